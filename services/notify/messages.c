/* messages - messages.conf read, and a message made of a template. */
#include "messages.h"
#include "wh_config.h"
#include "wh_err.h"

#include <stdlib.h>
#include <string.h>

#define MSG_TEXT_MAX 1000 /* characters of a template */

struct msg_set_s {
  char *id[MSG_NEVENTS];
  char *text[MSG_NEVENTS];
};

static const char *const s_events[MSG_NEVENTS] = {
    "dispatched", "merged", "sign", "assign", "progress", "approve", "resolve",
    "feedback_closed", "feedback_reopened", "reopen", "close", "void"};

static const char *const s_fields[] = {"ticket", "lead", "note", "due", "until", "first", NULL};

int msg_event_parse(const char *name) {
  for (int i = 0; name && i < MSG_NEVENTS; i++)
    if (!strcmp(name, s_events[i])) return i;
  return -1;
}

/* The field named at p ("{name}"), as an index into s_fields; -1 if none. */
static int s_field(const char *p, size_t *len) {
  if (*p != '{') return -1;
  const char *end = strchr(p, '}');
  if (!end) return -1;
  for (int i = 0; s_fields[i]; i++)
    if ((size_t)(end - p - 1) == strlen(s_fields[i]) && !strncmp(p + 1, s_fields[i], strlen(s_fields[i]))) {
      *len = (size_t)(end - p) + 1;
      return i;
    }
  return -1;
}

void msg_destroy(msg_set_t **self_p) {
  if (!self_p || !*self_p) return;
  for (int i = 0; i < MSG_NEVENTS; i++) {
    free((*self_p)->id[i]);
    free((*self_p)->text[i]);
  }
  free(*self_p);
  *self_p = NULL;
}

msg_set_t *msg_load(const char *path, char *err, size_t errlen) {
  config_t cfg;
  if (wh_config_read(&cfg, path, err, errlen)) return NULL;
  msg_set_t *m = calloc(1, sizeof *m);
  config_setting_t *list = config_lookup(&cfg, "messages");
  if (!m || !list || !config_setting_is_list(list)) {
    snprintf(err, errlen, "%s: 'messages' is a list of { id = ...; on = ...; text = ...; }", path);
    goto fail;
  }
  for (int i = 0; i < config_setting_length(list); i++) {
    config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    const char *id = wh_config_str(e, "id"), *on = wh_config_str(e, "on"),
               *text = wh_config_str(e, "text");
    int ev = msg_event_parse(on);
    if (!id || wh_code_check(id, 32)) {
      wh_config_fail(e, err, errlen, "'id' is a code of at most 32 characters");
      goto fail;
    }
    if (ev < 0) {
      wh_config_fail(e, err, errlen, "'on' is one of dispatched, merged, sign, assign, progress,"
                                     " approve, resolve, feedback_closed, feedback_reopened,"
                                     " reopen, close, void");
      goto fail;
    }
    if (!text || wh_text_check(text, 1, MSG_TEXT_MAX)) {
      wh_config_fail(e, err, errlen, "'text' is UTF-8 of 1 to %d characters", MSG_TEXT_MAX);
      goto fail;
    }
    for (const char *p = strchr(text, '{'); p; p = strchr(p + 1, '{')) {
      size_t len;
      if (s_field(p, &len) < 0) {
        wh_config_fail(e, err, errlen, "'%.40s': the fields a text may name are {ticket} {lead} {note} {due}"
                                       " {until} {first}", p);
        goto fail;
      }
    }
    if (m->text[ev]) {
      wh_config_fail(e, err, errlen, "a second template for '%s'", on);
      goto fail;
    }
    for (int k = 0; k < MSG_NEVENTS; k++)
      if (m->id[k] && !strcmp(m->id[k], id)) {
        wh_config_fail(e, err, errlen, "id '%s' is used twice", id);
        goto fail;
      }
    m->id[ev] = strdup(id);
    m->text[ev] = strdup(text);
  }
  for (int k = 0; k < MSG_NEVENTS; k++)
    if (!m->text[k]) {
      wh_config_fail(list, err, errlen, "no template for '%s'", s_events[k]);
      goto fail;
    }
  config_destroy(&cfg);
  return m;
fail:
  config_destroy(&cfg);
  msg_destroy(&m);
  return NULL;
}

const char *msg_render(const msg_set_t *set, msg_event_t ev, const msg_args_t *a, wh_str_t *out) {
  if ((unsigned)ev >= MSG_NEVENTS) return "";
  const char *vals[] = {a->ticket, a->lead, a->note, a->due, a->until, a->first};
  const char *t = set->text[ev];
  while (*t) {
    size_t len;
    int h = s_field(t, &len);
    if (h >= 0) {
      if (vals[h]) wh_str_add(out, vals[h]);
      t += len;
      continue;
    }
    const char *next = strchr(t + 1, '{');
    size_t n = next ? (size_t)(next - t) : strlen(t);
    wh_str_addn(out, t, n);
    t += n;
  }
  return set->id[ev];
}
