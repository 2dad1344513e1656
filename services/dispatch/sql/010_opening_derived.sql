-- An order's opening (received, triaged and, unless it was merged,
-- dispatched) is worked out from the order's own columns when it is read,
-- by the view opening, where its three notes were written with every order:
-- a sixth of the row, each a copy of what the row holds besides. Orders
-- opened before this migration keep the opening they stored.
ALTER TABLE work_order ADD COLUMN decided_at timestamptz;
-- The type that rows come in as, with decided_at where opening was.
DROP TYPE work_order_row;
CREATE TYPE work_order_row AS (
  ticket_id text, state text, external_id text, source text, community text, grid text,
  address text, category text, klass text, body text, reporter_masked text,
  received_at timestamptz, color text, level bigint, lead text, co text[], rule text,
  weight bigint, duplicate_of text, decided_at timestamptz, at timestamptz, due_names text[],
  due_ms bigint[], next_due_at timestamptz, out_payload bytea
);
-- A moment as the notes give it (and as wh_time_format writes it): UTC+8,
-- to the second.
CREATE FUNCTION opening_time(ms bigint) RETURNS text LANGUAGE sql STABLE STRICT AS $$
  SELECT to_char(to_timestamp(ms / 1000) AT TIME ZONE INTERVAL '+08:00',
                 'YYYY-MM-DD"T"HH24:MI:SS"+08:00"')
$$;
-- (ticket_id, at, o, kind, actor, note): o orders the events of one moment.
CREATE VIEW opening AS
  SELECT w.ticket_id, to_timestamp((w.opening[i + 2])::double precision / 1000) AS at, i AS o,
    w.opening[i] AS kind, w.opening[i + 1] AS actor, w.opening[i + 3] AS note
  FROM work_order w, generate_series(1, coalesce(cardinality(w.opening), 0), 4) AS i
  UNION ALL
  SELECT w.ticket_id, e.at, e.o, e.kind, e.actor, e.note
  FROM work_order w CROSS JOIN LATERAL (VALUES
    (w.received_at, 1, 'received', 'intake', w.external_id || ' from ' || w.source),
    (coalesce(w.decided_at, w.created_at), 5, 'triaged', 'triage',
     w.klass || ' ' || w.color || ', level ' || w.level || ', lead ' || w.lead
       || ' (' || w.rule || ')'),
    (w.created_at, 9, 'dispatched', 'dispatch',
     'lead ' || w.lead
       || CASE WHEN cardinality(w.co) > 0 THEN '; co ' || array_to_string(w.co, ', ') ELSE '' END
       || coalesce((SELECT string_agg('; ' || d.name || ' by ' || opening_time(d.due), ''
                                      ORDER BY d.k)
                    FROM unnest(w.due_names, w.due_ms) WITH ORDINALITY AS d(name, due, k)), ''))
  ) AS e(at, o, kind, actor, note)
  WHERE w.opening IS NULL AND (e.kind <> 'dispatched' OR w.duplicate_of IS NULL);
