/* wh_err - whistle's error codes, one table.
 *
 * Internal functions return 0 or a negative WH_E* value. The table is the only
 * place a code is named; wh_strerror() and wh_err_name() read it. Errors a
 * peer must see travel as whistle.ErrorCode, mapped by wh_err_to_wire(). */
#ifndef WH_ERR_H
#define WH_ERR_H

#define WH_ERRNO_MAP(X)                                                       \
  X(DECODE, "frame is not a whistle envelope")                                \
  X(TOOBIG, "frame over the size cap")                                        \
  X(MISSING, "required field missing")                                        \
  X(TOOLONG, "field too long")                                                \
  X(UTF8, "field is not valid UTF-8")                                         \
  X(SOURCE, "unknown source")                                                 \
  X(CATEGORY, "unknown category")                                             \
  X(TIME, "time out of range")                                                \
  X(PHONE, "malformed phone number")                                          \
  X(LOCATION, "coordinates out of range")                                     \
  X(FIELD, "malformed field")                                                 \
  X(UNEXPECTED, "unexpected message type")                                    \
  X(DB, "database error")                                                     \
  X(ORDER, "earlier event of this ticket missing")                            \
  X(PARTY, "unknown party")                                                   \
  X(FORBIDDEN, "that party may not do this")                                  \
  X(NUL, "a text or id holds a NUL byte")                                     \
  X(CONFIG, "configuration error")                                            \
  X(NOMEM, "out of memory")                                                   \
  X(IO, "input/output error")                                                 \
  X(ZMQ, "messaging error")                                                   \
  X(NOTFOUND, "not found")                                                    \
  X(INVAL, "invalid argument")                                                \
  X(WRONGSTATE, "not from the order's state")                                 \
  X(TOOLATE, "a window has passed")                                           \
  X(TOOFAR, "beyond the longest extension allowed")                           \
  X(REASON, "not one of the reasons or ratings")                              \
  X(STALE, "the order has moved on since that version")                       \
  X(TICKET, "no such ticket at dispatch")

typedef enum {
  WH_OK = 0,
#define X(name, text) WH_E##name,
  WH__EFIRST = -1000,
  WH_ERRNO_MAP(X)
#undef X
} wh_err_t;

/* Returns a static, human-readable description of err (0 or WH_E*). */
const char *wh_strerror(int err);
/* Returns the code's short name, e.g. "EUTF8". */
const char *wh_err_name(int err);
/* Maps an internal code to the wire's whistle.ErrorCode value. */
int wh_err_to_wire(int err);

#endif
