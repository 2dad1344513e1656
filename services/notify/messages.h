/* messages - what the reporter is told, from messages.conf.
 *
 * One template per event the reporter hears of [进度秒现], each with a
 * stable id that the reporter sink writes beside the message: rewording a
 * text keeps its id, a message that means something else gets a new one.
 * A text names what it says by fields in braces: {ticket}, {lead} (the party
 * that has the order, by its name on the org chart), {note} (the party's
 * public note), {due} (the deadline), {until} (an extension's new
 * deadline), {first} (the order a repeat was merged under). A file with an
 * unknown event or field, an event without a template, or an id used
 * twice is refused with file and line. */
#ifndef WH_NOTIFY_MESSAGES_H
#define WH_NOTIFY_MESSAGES_H

#include "wh_text.h"

#include <stddef.h>

/* The events a template is for. */
typedef enum {
  MSG_DISPATCHED, MSG_MERGED, MSG_SIGN, MSG_ASSIGN, MSG_PROGRESS, MSG_APPROVE, MSG_RESOLVE,
  MSG_FEEDBACK_CLOSED, MSG_FEEDBACK_REOPENED, MSG_REOPEN, MSG_CLOSE, MSG_VOID, MSG_NEVENTS
} msg_event_t;

typedef struct msg_set_s msg_set_t;

/* What a message may say. NULL or "" for what the event has not. */
typedef struct {
  const char *ticket, *lead, *note, *due, *until, *first;
} msg_args_t;

msg_set_t *msg_load(const char *path, char *err, size_t errlen);
void msg_destroy(msg_set_t **self_p);
/* The event's name in messages.conf ("feedback_closed"); -1 for unknown. */
int msg_event_parse(const char *name);
/* Writes the event's message into out; returns its id (borrowed from set). */
const char *msg_render(const msg_set_t *set, msg_event_t ev, const msg_args_t *a, wh_str_t *out);

#endif
