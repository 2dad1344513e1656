/* wh_outbox - the outbox and inbox tables every service keeps. */
#include "wh_outbox.h"

const wh_migration_t wh_outbox_migration = {
    "000_outbox",
    "CREATE TABLE outbox ("
    "  id bigserial PRIMARY KEY,"
    "  dest text NOT NULL,"
    "  message_id text NOT NULL,"
    "  ticket_id text NOT NULL,"
    "  seq integer NOT NULL,"
    "  payload bytea NOT NULL,"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  delivered_at timestamptz,"
    "  parked_at timestamptz,"
    "  last_error text);"
    "CREATE INDEX outbox_pending ON outbox (dest, id)"
    "  WHERE delivered_at IS NULL AND parked_at IS NULL;"
    "CREATE TABLE inbox ("
    "  source text NOT NULL,"
    "  ticket_id text NOT NULL,"
    "  last_seq integer NOT NULL,"
    "  updated_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (source, ticket_id));"};

/* The relay reads undelivered rows in id order by the primary key: the
 * table holds only what is still owed (acknowledged rows are deleted), so a
 * second index on the pending rows cost every row an entry for nothing. */
const wh_migration_t wh_outbox_migration_1 = {"000_outbox_1_by_id",
                                              "DROP INDEX IF EXISTS outbox_pending;"};

/* The outbox becomes a log. Ids are given in commit order (a service is its
 * outbox's one writer, one transaction at a time), so what a relay has
 * delivered is a line per destination (outbox_line.upto: every row at or
 * below it was acknowledged or parked) and not a deletion per row: the
 * deletions and the primary key's entries were a sixth of the CPU a ticket
 * cost. The relay empties the table (TRUNCATE) when everything in it has
 * been delivered; a parked row is copied to outbox_parked when it is parked,
 * so emptying loses nothing. Rows are found by id through a BRIN index,
 * which costs an insert next to nothing. outbox_owed lists what is still
 * owed (a row above the line may already be acknowledged: the relay moves
 * the line after the acknowledgements of a burst). */
const wh_migration_t wh_outbox_migration_2 = {
    "000_outbox_2_log",
    "ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;"
    "CREATE INDEX outbox_id ON outbox USING brin (id) WITH (pages_per_range = 32);"
    "CREATE TABLE outbox_line ("
    "  dest text PRIMARY KEY,"
    "  upto bigint NOT NULL,"
    "  at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE outbox_parked (LIKE outbox);"
    "INSERT INTO outbox_parked SELECT * FROM outbox WHERE parked_at IS NOT NULL;"
    "CREATE VIEW outbox_owed AS"
    "  SELECT o.* FROM outbox o LEFT JOIN outbox_line l ON l.dest = o.dest"
    "  WHERE o.parked_at IS NULL AND o.id > coalesce(l.upto, 0);"};

/* The relay empties the outbox with TRUNCATE, which waits at most 100 ms
 * for its lock; an autovacuum of the table holds that lock for longer (it
 * yields only after deadlock_timeout) and has nothing to do there: rows
 * are only inserted, and the table is emptied whole. */
const wh_migration_t wh_outbox_migration_3 = {
    "000_outbox_3_no_autovacuum", "ALTER TABLE outbox SET (autovacuum_enabled = false);"};

/* Carried messages: a service's first message for a ticket may ride in the
 * state row that its first apply inserts anyway (wh_outbox_carry), in two
 * columns (out_id from outbox_id_seq, out_payload), instead of a row of its
 * own in the outbox: a ticket then costs the database one row less per
 * service. A service that carries defines, in a migration of its own, the
 * view outbox_carried over its state table, with these columns and types:
 *   (id bigint, dest text, message_id text, ticket_id text, seq integer,
 *    payload bytea, created_at timestamptz)
 * (message_id may be NULL: it is inside the payload). A service that does
 * not gets an empty one here. outbox_all is what the relay reads: every
 * message still in the outbox or carried, with parked_at. A carried message
 * that is parked is copied to outbox_parked like any other, and is known
 * parked by that copy (indexed by id). outbox_owed lists both kinds. */
const wh_migration_t wh_outbox_migration_4 = {
    "000_outbox_4_carried",
    "DO $$ BEGIN"
    "  IF to_regclass('outbox_carried') IS NULL THEN"
    "    CREATE VIEW outbox_carried AS SELECT id, dest, message_id, ticket_id, seq, payload,"
    "      created_at FROM outbox WHERE false;"
    "  END IF;"
    " END $$;"
    "CREATE INDEX outbox_parked_id ON outbox_parked (id);"
    "CREATE VIEW outbox_all AS"
    "  SELECT id, dest, payload, parked_at FROM outbox"
    "  UNION ALL"
    "  SELECT c.id, c.dest, c.payload, p.parked_at FROM outbox_carried c"
    "    LEFT JOIN outbox_parked p ON p.id = c.id;"
    "DROP VIEW outbox_owed;"
    "CREATE VIEW outbox_owed AS"
    "  SELECT o.* FROM ("
    "    SELECT id, dest, message_id, ticket_id, seq, payload, created_at FROM outbox"
    "      WHERE parked_at IS NULL"
    "    UNION ALL"
    "    SELECT c.* FROM outbox_carried c"
    "      WHERE NOT EXISTS (SELECT FROM outbox_parked p WHERE p.id = c.id)) o"
    "  LEFT JOIN outbox_line l ON l.dest = o.dest WHERE o.id > coalesce(l.upto, 0);"};

/* Outbox ids come from the sequence a thousand at a time per session,
 * where each nextval had locked, updated and (one in 32) logged the
 * sequence's page: a twentieth of what a ticket cost the database. Ids
 * still follow commit order: one session takes them (wh_pg holds the
 * service's writer lock), one transaction at a time. A new session (after
 * a restart or a lost connection) starts above whatever the last one
 * reserved, leaving a gap the relay reads past (the sequence's last_value
 * is the top of what was reserved, not of what was used). */
const wh_migration_t wh_outbox_migration_5 = {"000_outbox_5_id_cache",
                                              "ALTER SEQUENCE outbox_id_seq CACHE 1000;"};

/* Parking in order: a message its receiver refused is parked (copied to
 * outbox_parked with the reason), and so is every later message of its
 * ticket to that destination, marked with the refused one it waits behind
 * (behind), instead of being sent again for ever behind it. A redrive
 * sends a ticket's parked messages again, oldest first, as new outbox
 * rows, and marks them redriven (redriven_at); what is still parked is
 * the rows with no redriven_at. */
const wh_migration_t wh_outbox_migration_6 = {
    "000_outbox_6_parked_in_order",
    "ALTER TABLE outbox_parked ADD COLUMN redriven_at timestamptz;"
    "ALTER TABLE outbox_parked ADD COLUMN behind text;"
    "CREATE INDEX outbox_parked_waiting ON outbox_parked (dest, ticket_id)"
    "  WHERE redriven_at IS NULL;"
    "CREATE INDEX outbox_parked_message ON outbox_parked (message_id);"};
