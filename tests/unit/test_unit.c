/* test_unit - fast tests of whistle's pure logic: text checks, phone
 * masking, time parsing, the working-day calendar, triage rules, front-door
 * validation and the envelope codec. Run one by name: test_unit NAME. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../services/dispatch/clocks.h"
#include "../../services/intake/intake.h"
#include "../../services/notify/messages.h"
#include "../mutate.h"
#include "wh_calendar.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_keys.h"
#include "wh_learn.h"
#include "wh_log.h"
#include "wh_org.h"
#include "wh_rules.h"
#include "wh_words.h"
#include "wh_wordset.h"
#include "wh_text.h"
#include "../../services/dispatch/machine.h"

#ifndef WH_SOURCE_DIR
#define WH_SOURCE_DIR "."
#endif

static int64_t T(const char *s) {
  int64_t ms;
  assert_int_equal(wh_time_parse(s, &ms), 0);
  return ms;
}

/* Strings built by appending: what does not fit is cut whole characters
 * at a time, and the result stays valid UTF-8. */
static void strings_built_by_appending(void **state) {
  (void)state;
  char buf[16];
  wh_str_t s;
  wh_str_init(&s, buf, sizeof buf);
  wh_str_add(&s, "WH");
  wh_str_int(&s, 42);
  wh_str_add(&s, NULL);
  wh_str_add(&s, " ");
  wh_str_int(&s, -7);
  assert_string_equal(buf, "WH42 -7");
  assert_false(s.full);
  wh_str_init(&s, buf, sizeof buf);
  wh_str_int(&s, INT64_MIN);
  assert_string_equal(buf, "");
  assert_true(s.full); /* 20 characters do not fit in 15 */
  char big[32];
  wh_str_init(&s, big, sizeof big);
  wh_str_int(&s, INT64_MIN);
  assert_string_equal(big, "-9223372036854775808");
  /* 盲道被花坛挡住了: three bytes a character; 15 bytes of room hold five. */
  wh_str_init(&s, buf, sizeof buf);
  wh_str_add(&s, "盲道被花坛挡住了");
  assert_string_equal(buf, "盲道被花坛");
  assert_true(s.full);
  wh_str_add(&s, "x"); /* nothing after a cut */
  assert_string_equal(buf, "盲道被花坛");
  wh_str_init(&s, buf, sizeof buf);
  wh_str_add(&s, "ab");
  wh_str_add(&s, "盲道被花坛挡"); /* 13 bytes of room: four characters */
  assert_string_equal(buf, "ab盲道被花");
  assert_true(wh_utf8_ok(buf, strlen(buf)));
  wh_str_init(&s, buf, sizeof buf);
  wh_str_cat(&s, "a", "", "bc", (char *)NULL);
  wh_str_cat(&s, (char *)NULL);
  assert_string_equal(buf, "abc");
  assert_string_equal(wh_str_copy(buf, 4, "abcdef"), "abc");
  assert_string_equal(wh_str_copy(buf, 1, "abc"), "");
  assert_string_equal(wh_str_copy(buf, sizeof buf, NULL), "");
}

static void utf8_checks(void **state) {
  (void)state;
  assert_true(wh_utf8_ok("盲道被花坛挡住了", strlen("盲道被花坛挡住了")));
  assert_true(wh_utf8_ok("line\nnext\ttab", 13));
  assert_false(wh_utf8_ok("\xc0\xaf", 2));             /* overlong '/' */
  assert_false(wh_utf8_ok("\xed\xa0\x80", 3));         /* surrogate */
  assert_false(wh_utf8_ok("\xe7\x9b", 2));             /* truncated */
  assert_false(wh_utf8_ok("\xf4\x90\x80\x80", 4));     /* above U+10FFFF */
  assert_false(wh_utf8_ok("a\x01z", 3));               /* control */
  assert_false(wh_utf8_ok("\xc2\x85", 2));             /* C1 control */
  assert_int_equal(wh_text_check("", 1, 10), WH_EMISSING);
  assert_int_equal(wh_text_check("", 0, 10), 0);
  assert_int_equal(wh_text_check("abcdefghijk", 1, 10), WH_ETOOLONG);
  assert_int_equal(wh_code_check("12345-250603-0042", 64), 0);
  assert_int_equal(wh_code_check("a b", 64), WH_EFIELD);
  assert_int_equal(wh_code_check("'; DROP TABLE ticket;--", 64), WH_EFIELD);
}

/* Sends the log (stderr) to a temporary file, which it returns, until
 * s_log_end(*saved); the service name on its lines is "unit". */
static FILE *s_log_start(int *saved) {
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  fflush(stderr);
  *saved = dup(2);
  assert_true(*saved >= 0 && dup2(fileno(tmp), 2) >= 0);
  wh_log_init("unit");
  return tmp;
}

static void s_log_end(int saved) {
  dup2(saved, 2);
  close(saved);
}

/* A log entry is one line of valid UTF-8 whatever it quotes: a ticket id
 * from a peer that carries a newline and a forged entry after it, a
 * control character, a report's text with CR LF, a backslash, bytes that
 * are not UTF-8 and a C1 control. Chinese text stays as it is. */
static void log_lines_escape_hostile_text(void **state) {
  (void)state;
  int saved;
  FILE *tmp = s_log_start(&saved);
  wh_log_ctx("F\n2026-11-22T00:00:00.000Z INFO  intake: forged", "m\x01id");
  wh_error("text %s", "路灯\r\n坏了\\ \xff\xc2\x85 end");
  wh_log_ctx(NULL, NULL);
  s_log_end(saved);
  char got[4096];
  rewind(tmp);
  size_t n = fread(got, 1, sizeof got - 1, tmp);
  fclose(tmp);
  got[n] = '\0';
  assert_true(n > 0 && got[n - 1] == '\n');
  assert_ptr_equal(strchr(got, '\n'), got + n - 1); /* one line */
  assert_null(strchr(got, '\r'));
  assert_true(wh_utf8_ok(got, n));
  assert_non_null(strstr(got, " ERROR unit ticket=F\\n2026-11-22T00:00:00.000Z INFO  intake: forged"
                              " msg=m\\x01id: text 路灯\\r\\n坏了\\\\ \\xff\\xc2\\x85 end\n"));
}

/* One place that logs writes WH_LOG_SITE_LINES lines a window and a note
 * when it starts holding the rest; its next line after the window says how
 * many were held. Another place is not held for it. */
static void log_lines_held_when_too_fast(void **state) {
  (void)state;
  int saved;
  FILE *tmp = s_log_start(&saved);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 3 * WH_LOG_SITE_LINES; i++) wh_warn("refused frame %d", i);
    wh_warn("another place");
    wh_clock_mono_shift_ms((WH_LOG_SITE_WINDOW_S + 1) * 1000);
  }
  wh_clock_mono_shift_ms(0);
  s_log_end(saved);
  rewind(tmp);
  char line[512];
  long refused = 0, other = 0, notes = 0, counts = 0;
  while (fgets(line, sizeof line, tmp)) {
    if (strstr(line, ": refused frame ")) refused++;
    else if (strstr(line, ": another place")) other++;
    else if (strstr(line, "come too fast")) notes++;
    else if (strstr(line, ": 200 more lines like the next were not logged in")) counts++;
    else fail_msg("unexpected line: %s", line);
  }
  fclose(tmp);
  assert_int_equal(refused, 2 * WH_LOG_SITE_LINES);
  assert_int_equal(other, 2);
  assert_int_equal(notes, 2);
  assert_int_equal(counts, 1);
}

static void phone_masking(void **state) {
  (void)state;
  char out[32];
  wh_phone_mask("13911110001", out, sizeof out);
  assert_string_equal(out, "139****0001");
  wh_phone_mask("+86 139-1111-0002", out, sizeof out);
  assert_string_equal(out, "861******0002");
  wh_phone_mask("95598", out, sizeof out);
  assert_string_equal(out, "***98");
  wh_phone_mask("", out, sizeof out);
  assert_string_equal(out, "");
  /* A masked number masks to itself, in place too: a service that masks
   * what it is given keeps a masked number and hides a full one. */
  const char *masked[] = {"139****0001", "861******0002", "***98", "**"};
  for (size_t i = 0; i < sizeof masked / sizeof *masked; i++) {
    char again[32];
    snprintf(again, sizeof again, "%s", masked[i]);
    wh_phone_mask(again, again, strlen(again) + 1);
    assert_string_equal(again, masked[i]);
  }
  assert_int_equal(wh_phone_check("13911110001"), 0);
  assert_int_equal(wh_phone_check("+86 139-1111-0001"), 0);
  assert_int_equal(wh_phone_check("call me"), WH_EPHONE);
  assert_int_equal(wh_phone_check("12"), WH_EPHONE);
}

static void time_parsing(void **state) {
  (void)state;
  assert_true(T("2025-06-02T10:12:00+08:00") == T("2025-06-02T02:12:00Z"));
  assert_true(T("2025-06-02T10:12:00.250+08:00") == T("2025-06-02T10:12:00+08:00") + 250);
  int64_t ms;
  assert_int_equal(wh_time_parse("2025-02-30T10:00:00Z", &ms), WH_ETIME);
  assert_int_equal(wh_time_parse("2025-06-02 10:12", &ms), WH_ETIME);
  assert_int_equal(wh_time_parse("2025-06-02T10:12:00", &ms), WH_ETIME); /* no zone */
  assert_int_equal(wh_time_parse("yesterday", &ms), WH_ETIME);
  char buf[40];
  assert_string_equal(wh_time_format(T("2025-06-02T02:12:00Z"), buf, sizeof buf),
                      "2025-06-02T10:12:00+08:00");
  assert_string_equal(wh_time_format(T("2025-12-31T16:00:00Z"), buf, sizeof buf),
                      "2026-01-01T00:00:00+08:00");
  /* The same as strftime says, across four centuries. */
  for (int64_t ms = -2208988800000; ms < 10000000000000; ms += 9876543210987 / 1000) {
    char want[40];
    time_t t = (time_t)(ms / 1000) + 8 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S+08:00", &tm);
    assert_string_equal(wh_time_format(ms, buf, sizeof buf), want);
  }
}

static wh_calendar_t *s_cal(void) {
  char err[512];
  wh_calendar_t *c = wh_calendar_load(WH_SOURCE_DIR "/deploy/demo/calendar.conf", err, sizeof err);
  if (!c) fail_msg("%s", err);
  return c;
}

static void calendar_working_days(void **state) {
  (void)state;
  wh_calendar_t *c = s_cal();
  assert_true(wh_calendar_is_workday(c, T("2025-06-03T09:00:00+08:00")));  /* Tuesday */
  assert_false(wh_calendar_is_workday(c, T("2025-06-07T09:00:00+08:00"))); /* Saturday */
  assert_false(wh_calendar_is_workday(c, T("2025-06-02T09:00:00+08:00"))); /* Dragon Boat */
  assert_true(wh_calendar_is_workday(c, T("2025-09-28T09:00:00+08:00")));  /* make-up Sunday */
  /* Local day boundaries are China's: 23:30 UTC Friday is Saturday there. */
  assert_false(wh_calendar_is_workday(c, T("2025-06-06T16:30:00Z")));
  wh_calendar_destroy(&c);
  assert_null(c);
}

static clk_policy_t *s_clocks(void) {
  char err[512];
  clk_policy_t *p = clk_policy_load(WH_SOURCE_DIR "/deploy/demo/clocks.conf", err, sizeof err);
  if (!p) fail_msg("%s", err);
  return p;
}

#define M(x) ((int64_t)(x) * 60000)

/* The clocks each level starts, as clocks.conf sets them, across the
 * calendar's holidays and make-up days. */
static void clocks_per_level(void **state) {
  (void)state;
  wh_calendar_t *c = s_cal();
  clk_policy_t *p = s_clocks();
  clk_set_t s;
  /* Level 2 on a holiday Monday: signed for in 4 hours (elapsed), resolved
   * by Tue..Fri, Mon -> the end of Monday 9 June. */
  int64_t rec = T("2025-06-02T10:12:00+08:00");
  assert_int_equal(clk_start(p, c, 2, 1, NULL, 0, rec, rec, rec, &s), 2);
  assert_string_equal(s.c[0].name, "sign_for");
  assert_true(s.c[0].due_ms == rec + M(240));
  assert_string_equal(s.c[1].name, "resolve");
  assert_true(s.c[1].due_ms == T("2025-06-09T23:59:59.999+08:00"));
  assert_int_equal(clk_main(&s), 1);
  /* Across National Day: Sep 26 (Fri) -> Sep 28 (make-up Sun), 29, 30, Oct 9, 10. */
  rec = T("2025-09-26T15:00:00+08:00");
  clk_start(p, c, 2, 1, NULL, 0, rec, rec, rec, &s);
  assert_true(s.c[1].due_ms == T("2025-10-10T23:59:59.999+08:00"));
  /* Level 3 signed for within a working day: from the eve of a weekend, Monday. */
  rec = T("2025-07-04T17:00:00+08:00"); /* a Friday */
  char *co[2] = {"xiangdong.pm", "housing"};
  assert_int_equal(clk_start(p, c, 3, 1, co, 2, rec, rec, rec, &s), 4);
  assert_string_equal(s.c[1].name, "sign_for:xiangdong.pm");
  assert_string_equal(s.c[2].name, "sign_for:housing");
  assert_true(s.c[0].due_ms == T("2025-07-07T23:59:59.999+08:00"));
  assert_true(s.c[2].due_ms == s.c[0].due_ms);
  assert_string_equal(s.c[3].name, "plan");
  assert_true(s.c[3].due_ms == T("2025-07-18T17:00:00+08:00"));
  assert_string_equal(clk_party(s.c[1].name), "xiangdong.pm");
  assert_null(clk_party(s.c[0].name));
  /* The center's queue has no sign-for clock. */
  assert_int_equal(clk_start(p, c, 1, 0, NULL, 0, rec, rec, rec, &s), 3);
  assert_string_equal(s.c[0].name, "respond");
  assert_int_equal(clk_start(p, c, 4, 1, NULL, 0, rec, rec, rec, &s), -1);
  /* The windows: a return window of 2 working days from the eve of
   * National Day 2026 ends on Oct 9; from Oct 9, the make-up Saturday
   * Oct 10 is the first of a feedback window. */
  assert_true(clk_span_end(c, p->return_window, T("2026-09-30T18:00:00+08:00")) ==
              T("2026-10-09T23:59:59.999+08:00"));
  assert_true(clk_span_end(c, p->feedback_window, T("2026-10-09T08:00:00+08:00")) ==
              T("2026-10-10T23:59:59.999+08:00"));
  assert_true(wh_calendar_workdays_end(c, T("2026-10-09T08:00:00+08:00"), 2) ==
              T("2026-10-12T23:59:59.999+08:00"));
  assert_true(clk_span_end(c, p->reopen_window, rec) == rec + 30 * M(1440));
  /* The ladder: at the lapse, 4 hours on, then by the end of the next
   * working day: from just after midnight into the make-up Saturday Oct 10,
   * the next is Monday Oct 12. */
  assert_int_equal(p->nsteps, 3);
  assert_string_equal(p->ladder[1].to, "street");
  int64_t lapse = T("2026-10-09T20:00:00+08:00");
  assert_true(clk_ladder_due(p, c, 0, lapse) == lapse);
  assert_true(clk_ladder_due(p, c, 1, lapse) == lapse + M(240));
  assert_true(clk_ladder_due(p, c, 2, lapse + M(240)) == T("2026-10-12T23:59:59.999+08:00"));
  assert_true(clk_ladder_due(p, c, 2, lapse) == T("2026-10-10T23:59:59.999+08:00"));
  assert_true(clk_ladder_due(p, c, 3, lapse) == 0);
  /* A stored policy reads back as the file did. */
  char err[256];
  clk_policy_t *again = clk_policy_parse(p->text, "clock_policy 1", err, sizeof err);
  assert_non_null(again);
  assert_memory_equal(again->levels, p->levels, sizeof p->levels);
  assert_memory_equal(again->ladder, p->ladder, sizeof p->ladder);
  clk_policy_destroy(&again);
  clk_policy_destroy(&p);
  wh_calendar_destroy(&c);
}

/* Reminders at 50% and 80% of each clock's time, a lapse once, and one
 * reminder (not two) when a late firing finds both shares passed. */
static void clocks_fire_once(void **state) {
  (void)state;
  wh_calendar_t *c = s_cal();
  clk_policy_t *p = s_clocks();
  clk_set_t s;
  clk_fired_t f;
  int64_t t0 = T("2026-12-03T10:00:00+08:00");
  /* level 1: sign_for 10 min (5, 8), respond 30 min (15, 24), control 2 h, follow_up 24 h */
  clk_start(p, c, 1, 1, NULL, 0, t0, t0, t0, &s);
  assert_int_equal(s.n, 4);
  assert_true(s.c[0].remind_ms == t0 + M(5));
  assert_true(s.c[1].remind_ms == t0 + M(15));
  assert_true(clk_next(&s) == t0 + M(5));
  clk_fire(p, &s, t0 + M(6), &f);
  assert_int_equal(f.nreminded, 1);
  assert_int_equal(f.reminded[0], 0);
  assert_int_equal(f.share, 50);
  assert_int_equal(f.nlapsed, 0);
  assert_true(s.c[0].remind_ms == t0 + M(8));
  clk_fire(p, &s, t0 + M(6), &f); /* the same time again: nothing */
  assert_int_equal(f.nreminded + f.nlapsed, 0);
  clk_fire(p, &s, t0 + M(11), &f); /* past 80% and the due time: the lapse only */
  assert_int_equal(f.nreminded, 0);
  assert_int_equal(f.nlapsed, 1);
  assert_true(f.lead_lapse_due_ms == t0 + M(10));
  assert_true(s.c[0].lapsed_ms == t0 + M(11));
  assert_true(clk_next(&s) == t0 + M(15));
  clk_fire(p, &s, t0 + M(25), &f); /* 50% and 80% of respond passed: one reminder */
  assert_int_equal(f.nreminded, 1);
  assert_int_equal(f.share, 80);
  assert_true(s.c[1].remind_ms == 0);
  assert_true(clk_next(&s) == t0 + M(30));
  clk_fire(p, &s, t0 + M(180), &f); /* respond and control lapse; their reminders go unsent */
  assert_int_equal(f.nlapsed, 2);
  assert_int_equal(f.nreminded, 0);
  assert_true(clk_next(&s) == t0 + M(12 * 60));
  clk_fire(p, &s, t0 + M(180), &f);
  assert_int_equal(f.nlapsed + f.nreminded, 0);
  /* A clock set with its shares already past sends none of them. */
  clk_start(p, c, 1, 1, NULL, 0, t0, t0, t0 + M(20), &s);
  assert_true(s.c[1].remind_ms == t0 + M(24));
  assert_true(s.c[0].remind_ms == 0);
  clk_fire(p, &s, t0 + M(20), &f); /* sign_for past due at setting: fires once, as a lapse */
  assert_int_equal(f.nlapsed, 1);
  /* Met and moved clocks; the feedback window has no reminders. */
  clk_meet(&s, "respond", t0 + M(21));
  assert_false(clk_running(&s.c[1]));
  clk_move(p, &s, clk_main(&s), t0 + M(48 * 60), t0 + M(24 * 60));
  assert_true(s.c[3].remind_ms == t0 + M(36 * 60));
  clk_meet_all(&s, t0 + M(25 * 60));
  clk_add(p, &s, "feedback", t0, t0 + M(60), t0);
  assert_true(s.c[s.n - 1].remind_ms == 0);
  clk_fire(p, &s, t0 + M(61), &f);
  assert_int_equal(f.feedback_due, 1);
  assert_true(f.lead_lapse_due_ms == 0);
  clk_drop(&s, "feedback", 0);
  assert_int_equal(s.n, 4);
  clk_policy_destroy(&p);
  wh_calendar_destroy(&c);
}

/* The reporter's messages from messages.conf: every event has one, each
 * named by its id, its fields filled in; a bad file says where. */
static void messages_from_templates(void **state) {
  (void)state;
  char err[512], buf[1024];
  msg_set_t *m = msg_load(WH_SOURCE_DIR "/deploy/demo/messages.conf", err, sizeof err);
  if (!m) fail_msg("%s", err);
  wh_str_t b;
  wh_str_init(&b, buf, sizeof buf);
  msg_args_t a = {.ticket = "WH00000009", .lead = "区交通委", .note = "人行道已补齐",
                  .due = "2026-10-13T23:59:59+08:00"};
  assert_string_equal(msg_render(m, MSG_RESOLVE, &a, &b), "rpt-resolved");
  assert_string_equal(buf, "您反映的问题（工单 WH00000009）已办结：人行道已补齐。"
                           "稍后将回访，请您对办理结果作出评价。");
  wh_str_init(&b, buf, sizeof buf);
  assert_string_equal(msg_render(m, MSG_DISPATCHED, &a, &b), "rpt-accepted");
  assert_non_null(strstr(buf, "已派区交通委办理，办理时限2026-10-13T23:59:59+08:00。"));
  /* a field with nothing to fill in is left empty, its name never printed */
  wh_str_init(&b, buf, sizeof buf);
  msg_args_t none = {.ticket = "WH00000009"};
  msg_render(m, MSG_VOID, &none, &b);
  assert_null(strchr(buf, '{'));
  assert_int_equal(msg_event_parse("feedback_reopened"), MSG_FEEDBACK_REOPENED);
  assert_int_equal(msg_event_parse("nonsense"), -1);
  msg_destroy(&m);
  const char *path = "/tmp/whistle-test-messages.conf";
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("messages = (\n  { id = \"a\"; on = \"sign\"; text = \"签收 {ticket}\"; },\n"
        "  { id = \"b\"; on = \"close\"; text = \"结案 {phone}\"; }\n);\n", f);
  fclose(f);
  assert_null(msg_load(path, err, sizeof err));
  assert_non_null(strstr(err, "whistle-test-messages.conf:3"));
  assert_non_null(strstr(err, "the fields a text may name"));
  f = fopen(path, "w");
  fputs("messages = ( { id = \"a\"; on = \"sign\"; text = \"签收\"; } );\n", f);
  fclose(f);
  assert_null(msg_load(path, err, sizeof err));
  assert_non_null(strstr(err, "no template for 'dispatched'"));
  unlink(path);
}

/* Whom the ladder reaches, and the names a reporter reads, from org.conf. */
static void org_supervisors_and_names(void **state) {
  (void)state;
  char err[512], out[256];
  wh_org_t *o = wh_org_load(WH_SOURCE_DIR "/deploy/demo/org.conf", err, sizeof err);
  if (!o) fail_msg("%s", err);
  wh_org_supervisor(o, "community", "wenhan", out, sizeof out);
  assert_string_equal(out, "wenhan.secretary");
  wh_org_supervisor(o, "street", "wenhan", out, sizeof out);
  assert_string_equal(out, "street_leader");
  wh_org_supervisor(o, "district", "nowhere", out, sizeof out);
  assert_string_equal(out, "district");
  wh_org_supervisor(o, "community", "nowhere", out, sizeof out); /* not on the chart */
  assert_string_equal(out, "center");
  wh_org_name(o, "transport", out, sizeof out);
  assert_string_equal(out, "区交通委");
  wh_org_name(o, "wenhan.rc", out, sizeof out);
  assert_string_equal(out, "文涵居民区居委会");
  wh_org_name(o, "nowhere.rc", out, sizeof out);
  assert_string_equal(out, "nowhere.rc");
  /* an old lane with no property company: its residents' committee takes
   * the property's work; a kind no one stands in for goes to the center */
  wh_org_resolve(o, "shouning", "pm", out, sizeof out);
  assert_string_equal(out, "shouning.rc");
  wh_org_resolve(o, "wenhan", "pm", out, sizeof out);
  assert_string_equal(out, "wenhan.pm");
  wh_org_destroy(&o);
  const char *bad[] = {
      "{ code = \"c\"; parties = [\"rc\"]; stands_in = { pm = \"grid\"; }; }", /* not its party */
      "{ code = \"c\"; parties = [\"rc\", \"pm\"]; stands_in = { pm = \"rc\"; }; }", /* it has one */
      "{ code = \"c\"; parties = [\"rc\"]; stands_in = [\"pm\", \"rc\"]; }",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    FILE *g = fopen("/tmp/whistle-test-org.conf", "w");
    assert_non_null(g);
    fprintf(g, "center = \"center\";\ndepartments = ( { code = \"water\"; } );\n"
               "community_parties = ( { code = \"rc\"; }, { code = \"pm\"; }, { code = \"grid\"; } );\n"
               "communities = (\n%s\n);\n", bad[i]);
    fclose(g);
    o = wh_org_load("/tmp/whistle-test-org.conf", err, sizeof err);
    if (o) fail_msg("stands_in %zu was taken", i);
    assert_non_null(strstr(err, "stands_in"));
    if (!strstr(err, "whistle-test-org.conf:5")) fail_msg("%s", err);
  }
  const char *path = "/tmp/whistle-test-org.conf";
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("center = \"center\";\ndepartments = ( { code = \"water\"; } );\n"
        "community_parties = ( { code = \"rc\"; } );\ncommunities = ();\n"
        "supervisors = { community = \"rc\"; street = \"mayor\"; };\n", f);
  fclose(f);
  assert_null(wh_org_load(path, err, sizeof err));
  assert_non_null(strstr(err, "whistle-test-org.conf:5"));
  assert_non_null(strstr(err, "mayor"));
  unlink(path);
}

static void clocks_errors_name_file_and_line(void **state) {
  (void)state;
  clk_span_t sp;
  assert_int_equal(clk_span_parse("4 hours", &sp), 0);
  assert_int_equal(sp.n, 4);
  assert_int_equal(clk_span_parse("1 working day", &sp), 0);
  assert_int_equal(sp.unit, CLK_WORKDAYS);
  assert_int_equal(clk_span_parse("4 hrs", &sp), -1);
  assert_int_equal(clk_span_parse("-1 hours", &sp), -1);
  assert_int_equal(clk_span_parse("", &sp), -1);
  assert_int_equal(clk_span_parse("400 working days", &sp), -1);
  char err[512];
  const char *path = "/tmp/whistle-test-clocks.conf";
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("levels = {\n  level1 = { sign_for = \"10 minutes\";\n"
        "    clocks = ( { name = \"respond\"; within = \"soon\"; } ); };\n};\n", f);
  fclose(f);
  assert_null(clk_policy_load(path, err, sizeof err));
  assert_non_null(strstr(err, "whistle-test-clocks.conf:3"));
  assert_non_null(strstr(err, "within"));
  unlink(path);
}

static void s_write(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void calendar_errors_name_file_and_line(void **state) {
  (void)state;
  char err[512];
  const char *path = "/tmp/whistle-test-calendar.conf";
  s_write(path, "weekend = [6, 7];\nholidays = [\"2025-13-01\"];\n");
  assert_null(wh_calendar_load(path, err, sizeof err));
  assert_non_null(strstr(err, "whistle-test-calendar.conf:2"));
  s_write(path, "holidays = [\n\"2025-01-01\"\n");
  assert_null(wh_calendar_load(path, err, sizeof err));
  assert_non_null(strstr(err, "whistle-test-calendar.conf:"));
  unlink(path);
}

typedef struct {
  wh_org_t *org;
  wh_rules_t *rules;
} s_policy_t;

static int s_policy_setup(void **state) {
  static s_policy_t p;
  char err[512];
  p.org = wh_org_load(WH_SOURCE_DIR "/deploy/demo/org.conf", err, sizeof err);
  if (!p.org) fail_msg("%s", err);
  p.rules = wh_rules_load(WH_SOURCE_DIR "/deploy/demo/rules.conf", p.org, err, sizeof err);
  if (!p.rules) fail_msg("%s", err);
  /* as triage readies them: the catalogue's phrases on the cut words */
  if (wh_rules_words(p.rules, NULL, NULL, err, sizeof err)) fail_msg("%s", err);
  *state = &p;
  return 0;
}

static int s_policy_teardown(void **state) {
  s_policy_t *p = *state;
  wh_rules_destroy(&p->rules);
  wh_org_destroy(&p->org);
  return 0;
}

static wh_decision_t s_decide(s_policy_t *p, const char *community, const char *category,
                              const char *text) {
  wh_report_t r = {.category = category, .text = text, .channel = "hotline",
                   .community = community};
  wh_decision_t d;
  wh_rules_decide(p->rules, p->org, &r, &d);
  return d;
}

static void rules_route_reports_never_seen(void **state) {
  s_policy_t *p = *state;
  wh_decision_t d = s_decide(p, "xiangdong", "", "楼下有人打起来了，还拿着酒瓶");
  assert_int_equal(d.color, WHISTLE__COLOR__COLOR_RED);
  assert_int_equal(d.level, 1);
  assert_string_equal(d.lead, "police");

  d = s_decide(p, "wenhan", "", "厨房里着火了，烟很大");
  assert_int_equal(d.level, 1);
  assert_string_equal(d.lead, "fire");

  d = s_decide(p, "wenhan", "noise", "隔壁楼道里闻到燃气味，很浓");
  assert_string_equal(d.lead, "gas"); /* an emergency signal outranks the category */
  assert_int_equal(d.level, 1);

  d = s_decide(p, "haide", "", "楼下烧烤店油烟太大，窗户都不敢开");
  assert_int_equal(d.color, WHISTLE__COLOR__COLOR_GREEN);
  assert_string_equal(d.klass, "fumes");
  assert_string_equal(d.lead, "haide.grid");

  d = s_decide(p, "biyuan", "", "小区门口的路灯一直不亮");
  assert_string_equal(d.lead, "street_office");

  d = s_decide(p, "xiangdong", "", "3号楼电梯坏了三天了，老人上不了楼");
  assert_string_equal(d.klass, "elevator");
  assert_string_equal(d.lead, "xiangdong.pm");

  d = s_decide(p, "xiangdong", "", "有人被困电梯里了");
  assert_int_equal(d.level, 1);

  d = s_decide(p, "wenhan", "", "小区里停车位太少，车到处乱停");
  assert_int_equal(d.color, WHISTLE__COLOR__COLOR_YELLOW);
  assert_string_equal(d.lead, "wenhan.rc");
  assert_string_equal(d.co[0], "wenhan.pm");
}

static void rules_category_trusted_over_keywords(void **state) {
  s_policy_t *p = *state;
  /* "一片黑" would say power cut; the call-taker said street lamp. */
  wh_decision_t d = s_decide(p, "shouning", "street_lamp", "小巷路灯坏了，晚上一片黑");
  assert_string_equal(d.klass, "street_lamp");
  assert_string_equal(d.rule, "category:street_lamp");
  d = s_decide(p, "wenhan", "parking", "三个停车场天天为停车吵架");
  assert_int_equal(d.level, 3);
  assert_string_equal(d.rule, "rule:parking-standing-dispute");
}

/* A keyword is found wherever it stands in the text, whatever stands
 * around it (triage rules out most keywords by the characters the text
 * holds before it searches). */
static void rules_keywords_found_anywhere(void **state) {
  s_policy_t *p = *state;
  char text[1024];
  assert_string_equal(s_decide(p, "wenhan", "", "着火了").lead, "fire");
  assert_string_equal(s_decide(p, "wenhan", "", "着火").lead, "fire");
  /* At the end of a long report, after text that shares bytes with it. */
  size_t o = 0;
  while (o < 600) o += (size_t)snprintf(text + o, sizeof text - o, "%s", "看火车着急，");
  snprintf(text + o, sizeof text - o, "%s", "着火");
  assert_string_equal(s_decide(p, "wenhan", "", text).lead, "fire");
  text[o] = '\0';
  assert_string_equal(s_decide(p, "wenhan", "", text).rule, "unplaced");
  /* Right after bytes that are not whole characters. */
  assert_string_equal(s_decide(p, "wenhan", "", "\x80\xe7\xe7\x9d着火").lead, "fire");
  assert_string_equal(s_decide(p, "wenhan", "", "ab\xe7着火\xe7").lead, "fire");
  /* `none`: a keyword that must be absent. */
  assert_string_equal(s_decide(p, "wenhan", "", "3号楼电梯坏了").klass, "elevator");
  assert_string_not_equal(s_decide(p, "wenhan", "", "加装电梯的事，电梯坏了").klass, "elevator");
  /* `all` with `any`: both must hold. */
  assert_string_equal(s_decide(p, "wenhan", "", "楼道里有人给电动车充电").klass,
                      "stairwell_charging");
  assert_string_not_equal(s_decide(p, "wenhan", "", "门口有人给电动车充电").klass,
                          "stairwell_charging");
}

static void rules_places_and_unplaced(void **state) {
  s_policy_t *p = *state;
  /* An unknown community keeps departments, its own parties go to center. */
  wh_decision_t d = s_decide(p, "nowhere", "parking", "门口电动车乱停");
  assert_string_equal(d.lead, "center");
  d = s_decide(p, "nowhere", "water_main", "水管爆了");
  assert_string_equal(d.lead, "water");
  assert_string_equal(d.co[0], "center");
  /* A community without an owners' committee. */
  d = s_decide(p, "shouning", "parking", "停车场僵尸车好多，天天吵架");
  assert_string_equal(d.lead, "shouning.rc");
  for (int i = 0; i < d.nco; i++) assert_string_not_equal(d.co[i], "shouning.oc");
  /* Nothing recognisable: the command center's queue, never merged. */
  d = s_decide(p, "wenhan", "", "请联系我一下");
  assert_string_equal(d.lead, "center");
  assert_string_equal(d.rule, "unplaced");
  assert_int_equal(d.merge, 0);
}

static void rules_care_tags_weigh(void **state) {
  s_policy_t *p = *state;
  char *tags[] = {"elderly_alone", "disabled"};
  wh_report_t r = {.category = "neighbour_leak", .text = "楼上渗水", .channel = "patrol",
                   .community = "xiangdong", .care_tags = tags, .ncare_tags = 2};
  wh_decision_t d;
  wh_rules_decide(p->rules, p->org, &r, &d);
  assert_int_equal(d.weight, 1 + 3 + 3);
  assert_int_equal(d.level, 2);
  assert_null(strstr(d.rule, "care"));
  /* where the tag changes the stakes it raises the level, and says so */
  char *alone[] = {"elderly_alone"};
  wh_report_t u = {.category = "", .text = "我一个人在家，头晕，身体不舒服，吃不下饭", .channel = "hotline",
                   .community = "xiangdong", .care_tags = alone, .ncare_tags = 1};
  wh_rules_decide(p->rules, p->org, &u, &d);
  assert_string_equal(d.klass, "elderly_unwell");
  assert_int_equal(d.level, 1);
  assert_string_equal(d.rule, "catalogue:elderly_unwell; care:elderly_alone level 2 to 1");
  /* untagged, the same report stays routine */
  u.ncare_tags = 0;
  wh_rules_decide(p->rules, p->org, &u, &d);
  assert_int_equal(d.level, 2);
  assert_string_equal(d.rule, "catalogue:elderly_unwell");
  /* a tagged resident asking about a subsidy stays level 2 */
  u = (wh_report_t){.category = "", .text = "想咨询一下高龄补贴怎么申请", .channel = "hotline",
                    .community = "xiangdong", .care_tags = alone, .ncare_tags = 1};
  wh_rules_decide(p->rules, p->org, &u, &d);
  assert_int_equal(d.level, 2);
  assert_null(strstr(d.rule, "care"));
  /* a raise names classes the catalogue has */
  char err[512];
  s_write("/tmp/whistle-test-care.conf",
          "catalogue = \"" WH_SOURCE_DIR "/deploy/demo/catalogue.conf\";\n"
          "unplaced = { color = \"yellow\"; level = 2; lead = \"center\"; };\n"
          "care_tags = ( { tag = \"elderly_alone\"; weight = 3;\n"
          "  raise = { level = 1; classes = [\"no_such_class\"]; }; } );\n");
  assert_null(wh_rules_load("/tmp/whistle-test-care.conf", p->org, err, sizeof err));
  if (!strstr(err, "no_such_class") || !strstr(err, "whistle-test-care.conf:4")) fail_msg("%s", err);
  unlink("/tmp/whistle-test-care.conf");
}


/* ---- the catalogue: words, negation, combinations, places, danger ---- */

static int s_not_lamp(void *arg, const char *klass) {
  (void)arg;
  return strcmp(klass, "street_lamp") != 0;
}

/* The center's examples: the most alike one's class, by the pairs of
 * characters shared and how rare each is among the examples. */
static void learn_most_alike_example(void **state) {
  (void)state;
  wh_learn_t *l = wh_learn_new();
  assert_non_null(l);
  wh_suggestion_t s;
  assert_int_equal(wh_learn_suggest(l, "快递柜屏幕黑了", NULL, NULL, &s), 0);
  assert_int_equal(wh_learn_add(l, "WH1", "parcel_locker", "快递柜的屏幕一直黑着，取不了件"), 0);
  assert_int_equal(wh_learn_add(l, "WH2", "street_lamp", "小区门口的路灯晚上不亮，黑乎乎的"), 0);
  assert_int_equal(wh_learn_add(l, "WH3", "stairwell_clutter", "楼道里堆满了纸箱和旧家具"), 0);
  assert_int_equal(wh_learn_add(l, "WH4", "broadband", "WIFI信号差，网速慢"), 0);
  assert_int_equal(wh_learn_count(l), 4);
  assert_int_equal(wh_learn_suggest(l, "快递柜屏幕黑了，取不出快递", NULL, NULL, &s), 1);
  assert_string_equal(s.klass, "parcel_locker");
  assert_string_equal(s.like, "WH1");
  assert_true(s.score > 300 && s.score < 1000);
  /* "黑" is in two examples; the lamp's own words decide */
  assert_int_equal(wh_learn_suggest(l, "路灯不亮，晚上黑", NULL, NULL, &s), 1);
  assert_string_equal(s.klass, "street_lamp");
  /* the same words score 1, whatever the width or case */
  assert_int_equal(wh_learn_suggest(l, "ｗｉｆｉ信号差，网速慢！", NULL, NULL, &s), 1);
  assert_string_equal(s.klass, "broadband");
  assert_int_equal(s.score, 1000);
  /* nothing shared, nothing suggested; nor from punctuation or broken text */
  assert_int_equal(wh_learn_suggest(l, "咨询社保卡补办", NULL, NULL, &s), 0);
  assert_int_equal(wh_learn_suggest(l, "。，！？", NULL, NULL, &s), 0);
  assert_int_equal(wh_learn_suggest(l, "\xe5\xbf\xab\xff\xfe", NULL, NULL, &s), 0);
  /* a class the caller no longer has is passed over */
  assert_int_equal(wh_learn_suggest(l, "小区门口路灯不亮，快递柜也黑着", NULL, NULL, &s), 1);
  assert_string_equal(s.klass, "street_lamp");
  assert_int_equal(wh_learn_suggest(l, "小区门口路灯不亮，快递柜也黑着", s_not_lamp, NULL, &s), 1);
  assert_string_equal(s.klass, "parcel_locker");
  assert_int_equal(wh_learn_suggest(l, "路灯不亮，晚上黑", s_not_lamp, NULL, &s), 0);
  /* a ticket taught again keeps its last class */
  assert_int_equal(wh_learn_add(l, "WH1", "parcel_service", "快递柜的屏幕一直黑着，取不了件"), 0);
  assert_int_equal(wh_learn_count(l), 4);
  assert_int_equal(wh_learn_suggest(l, "快递柜屏幕黑了，取不出快递", NULL, NULL, &s), 1);
  assert_string_equal(s.klass, "parcel_service");
  /* what cannot be an example is refused and changes nothing */
  assert_int_equal(wh_learn_add(l, "", "x", "快递柜"), WH_EINVAL);
  assert_int_equal(wh_learn_add(l, "WH5", "", "快递柜"), WH_EINVAL);
  assert_int_equal(wh_learn_add(l, "WH5", "x", "，。！"), WH_EINVAL);
  assert_int_equal(wh_learn_count(l), 4);
  wh_learn_destroy(&l);
  assert_null(l);
}

/* A report no rule or phrase places: the examples' class routes it from
 * route_at, is only suggested from suggest_at, and a placed report is
 * the catalogue's whatever the examples say. */
static void rules_learned_from_the_center(void **state) {
  s_policy_t *p = *state;
  assert_int_equal(p->rules->learn_suggest_at, 250);
  assert_int_equal(p->rules->learn_route_at, 500);
  wh_learn_t *l = wh_learn_new();
  assert_int_equal(wh_learn_add(l, "WH00000001", "parcel_locker", "快递柜的屏幕一直黑着，取不了件"), 0);
  assert_int_equal(wh_learn_add(l, "WH00000002", "street_lamp", "路灯坏了"), 0);
  wh_report_t r = {.category = "", .text = "快递柜的屏幕一直黑着，取不了件，好几天了", .channel = "hotline",
                   .community = "xiangdong", .learned = l};
  wh_decision_t d;
  wh_rules_decide(p->rules, p->org, &r, &d);
  assert_string_equal(d.klass, "parcel_locker");
  assert_string_equal(d.lead, "xiangdong.pm");
  if (strncmp(d.rule, "learned:parcel_locker 0.", 24) || !strstr(d.rule, " like WH00000001"))
    fail_msg("%s", d.rule);
  assert_string_equal(d.suggested.klass, "parcel_locker");
  assert_true(d.suggested.score >= 500);
  /* less alike: the center's queue, with the suggestion */
  r.text = "快递柜屏幕黑了，取不出快递";
  wh_rules_decide(p->rules, p->org, &r, &d);
  assert_string_equal(d.klass, "unplaced");
  assert_string_equal(d.rule, "unplaced");
  assert_string_equal(d.suggested.klass, "parcel_locker");
  assert_true(d.suggested.score >= 250 && d.suggested.score < 500);
  /* without examples, nothing suggested */
  r.learned = NULL;
  wh_rules_decide(p->rules, p->org, &r, &d);
  assert_string_equal(d.klass, "unplaced");
  assert_string_equal(d.suggested.klass, "");
  /* a class the examples gave, owned by place: the text's place words say
   * where, though no phrase of the catalogue holds in it */
  assert_int_equal(wh_learn_add(l, "WH00000003", "public_sanitation", "那一块脏得不像样，一直乱糟糟的"), 0);
  r = (wh_report_t){.category = "", .text = "马路上那一块脏得不像样", .channel = "hotline",
                    .community = "xiangdong", .learned = l};
  wh_rules_decide(p->rules, p->org, &r, &d);
  if (strncmp(d.rule, "learned:public_sanitation", 25)) fail_msg("%s", d.rule);
  assert_string_equal(d.lead, "greening");
  r.text = "小区里那一块脏得不像样";
  wh_rules_decide(p->rules, p->org, &r, &d);
  if (strncmp(d.rule, "learned:public_sanitation", 25)) fail_msg("%s", d.rule);
  assert_string_equal(d.place, "compound");
  assert_string_equal(d.lead, "xiangdong.pm");
  /* the catalogue places it: the examples are not asked */
  r = (wh_report_t){.category = "", .text = "路灯坏了", .channel = "hotline", .community = "xiangdong",
                    .learned = l};
  wh_rules_decide(p->rules, p->org, &r, &d);
  assert_string_equal(d.rule, "catalogue:street_lamp");
  assert_string_equal(d.suggested.klass, "");
  wh_learn_destroy(&l);
  /* scores in order, or the file is refused with its line */
  char err[512];
  s_write("/tmp/whistle-test-learn.conf",
          "catalogue = \"" WH_SOURCE_DIR "/deploy/demo/catalogue.conf\";\n"
          "unplaced = { color = \"yellow\"; level = 2; lead = \"center\"; };\n"
          "learning = { suggest_at = 0.6; route_at = 0.4; };\n");
  assert_null(wh_rules_load("/tmp/whistle-test-learn.conf", p->org, err, sizeof err));
  if (!strstr(err, "suggest_at") || !strstr(err, "whistle-test-learn.conf:3")) fail_msg("%s", err);
  unlink("/tmp/whistle-test-learn.conf");
}

/* A catalogue of its own, so each behaviour is asserted on phrases the
 * test chose; with the demo org chart. */
static wh_rules_t *s_catalogue(s_policy_t *p, const char *classes, char *err, size_t errlen) {
  s_write("/tmp/whistle-test-cat-rules.conf",
          "catalogue = \"whistle-test-cat.conf\";\n"
          "unplaced = { color = \"yellow\"; level = 2; lead = \"center\"; };\n");
  char text[8192];
  snprintf(text, sizeof text,
           "negators = [\"没有\", \"没\", \"不是\", \"不\", \"差点\", \"怕\"];\n"
           "negators_after = [\"隐患\", \"风险\"]; hedges = [\"就怕\", \"要是\"];\n"
           "places = { road = [\"马路上\", \"路边\", \"小区大门外\"]; compound = [\"小区里\", \"楼道\", \"小区\"]; };\n"
           "groups = ( { code = \"g\"; name = \"组\"; }, { code = \"e\"; name = \"险\"; }, { code = \"w\"; name = \"水\"; } );\n"
           "classes = (\n%s\n);\n", classes);
  s_write("/tmp/whistle-test-cat.conf", text);
  wh_rules_t *r = wh_rules_load("/tmp/whistle-test-cat-rules.conf", p->org, err, errlen);
  if (r && wh_rules_words(r, NULL, NULL, err, errlen)) wh_rules_destroy(&r);
  return r;
}

static const char *s_test_classes =
    "{ code = \"lamp\"; name = \"灯\"; group = \"g\"; color = \"red\"; level = 2; lead = \"street_office\"; co = [];\n"
    "  compound = { color = \"green\"; lead = \"pm\"; };\n"
    "  says = [\"灯 坏了|不亮\", \"路灯\"]; },\n"
    "{ code = \"crack\"; name = \"裂缝\"; group = \"g\"; color = \"red\"; level = 2; lead = \"housing\"; co = [];\n"
    "  says = [\"墙 裂缝\", \"墙皮\"]; },\n"
    "{ code = \"crack2\"; name = \"又一个\"; group = \"g\"; color = \"red\"; level = 2; lead = \"enforcement\"; co = [];\n"
    "  says = [\"墙皮\"]; },\n"
    "{ code = \"fire\"; name = \"火\"; group = \"e\"; color = \"red\"; level = 1; lead = \"fire\"; co = [\"police\"];\n"
    "  danger = true; takes_lead = true; says = [\"冒烟|着火|火灾\", \"火\"]; },\n"
    "{ code = \"flood\"; name = \"水\"; group = \"e\"; color = \"red\"; level = 1; lead = \"drainage\"; co = [];\n"
    "  danger = true; says = [\"淹了\"]; },\n"
    "{ code = \"main\"; name = \"总管\"; group = \"w\"; color = \"red\"; level = 1; lead = \"water\"; co = [];\n"
    "  danger = true; takes_lead = true; says = [\"水管爆\"]; },\n"
    "{ code = \"upstairs\"; name = \"楼上\"; group = \"w\"; color = \"green\"; level = 1; lead = \"pm\"; co = [];\n"
    "  says = [\"楼上 水管爆|漏水\"]; }";

static wh_decision_t s_decide_at(wh_rules_t *r, s_policy_t *p, const char *community,
                                 const char *grid, const char *address, const char *text) {
  wh_report_t rep = {.category = "", .text = text, .channel = "app", .community = community,
                     .grid = grid, .address = address};
  wh_decision_t d;
  wh_rules_decide(r, p->org, &rep, &d);
  return d;
}

/* The catalogue's words found in one pass: at every character, longest
 * first, as a search for each word at each position would find them; a
 * broken character or the end of the text hides none that stands whole. */
static void wordset_finds_every_word_in_one_pass(void **state) {
  (void)state;
  static const char *words[] = {"垃圾", "垃圾桶", "桶", "火", "着火", "没人收", "110", "a", NULL};
  wh_wordset_t *ws = wh_wordset_new();
  assert_non_null(ws);
  for (int i = 0; words[i]; i++) assert_int_equal(wh_wordset_add(ws, words[i]), i);
  assert_int_equal(wh_wordset_add(ws, "垃圾"), 0); /* added before: its id */
  assert_int_equal(wh_wordset_add(ws, ""), -1);
  assert_int_equal(wh_wordset_add(ws, "\xe5\x9e"), -1); /* not whole UTF-8 */
  assert_int_equal(wh_wordset_build(ws), 0);
  assert_int_equal(wh_wordset_chars(ws, 1), 3);
  assert_int_equal(wh_wordset_len(ws, 1), 9);
  wh_spot_t spots[64];
  const char *text = "垃圾桶满了没人收，着火";
  size_t n = wh_wordset_scan(ws, text, strlen(text), spots);
  assert_int_equal(n, 6);
  assert_int_equal(spots[0].id, 1); /* 垃圾桶 before 垃圾, both at 0 */
  assert_int_equal(spots[0].at, 0);
  assert_int_equal(spots[1].id, 0);
  assert_int_equal(spots[1].at, 0);
  assert_int_equal(spots[2].id, 2);
  assert_int_equal(spots[2].at, 6);
  assert_int_equal(spots[3].id, 5);
  assert_int_equal(spots[4].id, 4);
  assert_int_equal(spots[5].id, 3);
  assert_int_equal(spots[5].at, strlen(text) - 3);
  /* the end of the text given hides what does not stand whole in it */
  assert_int_equal(wh_wordset_scan(ws, text, 8, spots), 1);
  /* against a search at every position, on texts of the words, a broken
   * character and filler */
  static const char *parts[] = {"垃圾", "桶", "火", "着", "没人", "收", "1", "10", "a", "，", "的",
                                "\xe5\x9e", "\x80", "圾"};
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int round = 0; round < 500; round++) {
    char t[256];
    size_t len = 0;
    for (int k = 0; k < 20; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const char *p = parts[x % (sizeof parts / sizeof *parts)];
      memcpy(t + len, p, strlen(p));
      len += strlen(p);
    }
    t[len] = '\0';
    wh_spot_t got[512], want[512];
    size_t ngot = wh_wordset_scan(ws, t, len, got), nwant = 0;
    assert_true(ngot <= wh_wordset_max_spots(ws, len));
    for (size_t at = 0; at < len; at++) {
      if (((unsigned char)t[at] & 0xC0) == 0x80) continue;
      for (size_t l = 64; l > 0; l--) /* longest first */
        for (int i = 0; words[i]; i++)
          if (strlen(words[i]) == l && l <= len - at && !memcmp(t + at, words[i], l))
            want[nwant++] = (wh_spot_t){.id = (uint32_t)i, .at = (uint32_t)at};
    }
    assert_int_equal(ngot, nwant);
    for (size_t k = 0; k < ngot; k++) {
      assert_int_equal(got[k].id, want[k].id);
      assert_int_equal(got[k].at, want[k].at);
    }
  }
  wh_wordset_destroy(&ws);
  assert_null(ws);
}

/* keep for the test below: leaves out the clauses that hold 马路 (of the
 * text given as arg) */
static int s_keep_no_road(size_t at, size_t len, void *arg) {
  return !memmem((const char *)arg + at, len, "马路", strlen("马路"));
}

/* The clauses a cut is told to leave out give no words; the others give
 * theirs at the same places, sentences and negation as in the whole cut. */
static void words_cut_only_the_clauses_asked(void **state) {
  (void)state;
  char err[512];
  wh_words_t *w = wh_words_new(NULL, err, sizeof err);
  if (!w) fail_msg("%s", err);
  char *negators[] = {"没有", NULL}, *none[] = {NULL};
  assert_int_equal(wh_words_negators(w, negators, none, none), 0);
  const char *text = "小区里着火了，马路上有人打架。楼道没有冒烟";
  wh_hit_t whole, part;
  assert_int_equal(wh_words_cut(w, text, NULL, NULL), 0);
  assert_true(wh_words_find(w, "着火", 0, &whole));
  assert_true(wh_words_find(w, "打架", 0, &part));
  assert_true(wh_words_find(w, "冒烟", 0, &whole));
  assert_true(whole.negated);
  size_t at = whole.at;
  int sentence = whole.sentence;
  assert_int_equal(wh_words_cut(w, text, s_keep_no_road, (void *)text), 0);
  assert_true(wh_words_find(w, "着火", 0, &part));
  assert_false(wh_words_find(w, "打架", 0, &part));
  assert_true(wh_words_find(w, "冒烟", 0, &part));
  assert_true(part.negated);
  assert_int_equal(part.at, at);
  assert_int_equal(part.sentence, sentence);
  wh_words_clear(w);
  assert_false(wh_words_find(w, "着火", 0, &part));
  wh_words_destroy(&w);
}

static void catalogue_matches_words_not_parts(void **state) {
  s_policy_t *p = *state;
  char err[512];
  wh_rules_t *r = s_catalogue(p, s_test_classes, err, sizeof err);
  if (!r) fail_msg("%s", err);
  /* 火 is a word of the fire signal; 火锅 holds it as a part only */
  wh_decision_t d = s_decide_at(r, p, "wenhan", "", "", "楼下新开的火锅店生意很好");
  assert_string_equal(d.klass, "unplaced");
  assert_string_equal(d.danger, "");
  d = s_decide_at(r, p, "wenhan", "", "", "楼下着火了");
  assert_string_equal(d.klass, "fire");
  assert_int_equal(d.level, 1);
  assert_string_equal(d.words, "着火");
  wh_rules_destroy(&r);
}

static void catalogue_negation_and_sentences(void **state) {
  s_policy_t *p = *state;
  char err[512];
  wh_rules_t *r = s_catalogue(p, s_test_classes, err, sizeof err);
  if (!r) fail_msg("%s", err);
  /* "没有冒烟": no signal; the lamp decides, at level 2 */
  wh_decision_t d = s_decide_at(r, p, "wenhan", "", "", "路灯没有冒烟，就是不亮");
  assert_string_equal(d.klass, "lamp");
  assert_int_equal(d.level, 2);
  assert_string_equal(d.danger, "");
  /* a negation ends at its clause: the smoke of the next one counts */
  d = s_decide_at(r, p, "wenhan", "", "", "不是路灯的事，冒烟了");
  assert_string_equal(d.klass, "fire");
  /* the words say the alternative the text holds, not the whole phrase */
  assert_string_equal(d.words, "冒烟");
  /* a verb and 不 cut as one word ("打不" 着火): the stove cannot light,
   * nothing is on fire */
  d = s_decide_at(r, p, "wenhan", "", "", "燃气灶打不着火");
  assert_string_equal(d.klass, "unplaced");
  assert_string_equal(d.danger, "");
  /* a fire feared or a fire hazard is not a fire: the lamp decides */
  d = s_decide_at(r, p, "wenhan", "", "", "路灯不亮，线路老化怕着火");
  assert_string_equal(d.klass, "lamp");
  assert_string_equal(d.danger, "");
  d = s_decide_at(r, p, "wenhan", "", "", "路灯不亮，电线裸露有火灾隐患");
  assert_string_equal(d.danger, "");
  /* a hedge reaches the whole rest of its clause; a risk may follow a 的 */
  d = s_decide_at(r, p, "wenhan", "", "", "路灯不亮，就怕哪天着火");
  assert_string_equal(d.klass, "lamp");
  assert_string_equal(d.danger, "");
  d = s_decide_at(r, p, "wenhan", "", "", "要是路灯那里冒烟了怎么办");
  assert_string_equal(d.danger, "");
  d = s_decide_at(r, p, "wenhan", "", "", "路灯不亮，电线有着火的风险");
  assert_string_equal(d.danger, "");
  d = s_decide_at(r, p, "wenhan", "", "", "就怕着火，现在已经冒烟了");
  assert_string_equal(d.klass, "fire");
  /* ... but a fire seen after a hazard is one */
  d = s_decide_at(r, p, "wenhan", "", "", "有火灾隐患。现在已经着火了");
  assert_string_equal(d.klass, "fire");
  /* the words of one phrase share a sentence: 墙 and 裂缝 apart are no crack */
  d = s_decide_at(r, p, "wenhan", "", "", "墙刚刷过。地上有裂缝");
  assert_string_equal(d.klass, "unplaced");
  d = s_decide_at(r, p, "wenhan", "", "", "墙上有一道裂缝，越来越宽");
  assert_string_equal(d.klass, "crack");
  assert_string_equal(d.words, "墙 裂缝");
  wh_rules_destroy(&r);
}

static void catalogue_precedence_and_runners_up(void **state) {
  s_policy_t *p = *state;
  char err[512];
  wh_rules_t *r = s_catalogue(p, s_test_classes, err, sizeof err);
  if (!r) fail_msg("%s", err);
  /* 墙皮 is in crack and crack2 alike: the class listed first decides, the
   * other is the runner-up */
  wh_decision_t d = s_decide_at(r, p, "wenhan", "", "", "外面的墙皮掉下来了");
  assert_string_equal(d.klass, "crack");
  assert_int_equal(d.nrunner_up, 1);
  assert_string_equal(d.runner_up[0], "crack2");
  /* the phrase that says more wins: 墙 + 裂缝 (5) over 灯 + 不亮 (4)? no:
   * 路灯 alone (2) loses to 墙 裂缝 */
  d = s_decide_at(r, p, "wenhan", "", "", "路灯旁边的墙有裂缝");
  assert_string_equal(d.klass, "crack");
  assert_string_equal(d.runner_up[0], "lamp");
  wh_rules_destroy(&r);
}

static void catalogue_owner_by_place(void **state) {
  s_policy_t *p = *state;
  char err[512];
  wh_rules_t *r = s_catalogue(p, s_test_classes, err, sizeof err);
  if (!r) fail_msg("%s", err);
  /* the grid's kind: wenhan-3 is public road, wenhan-1 inside the compound */
  wh_decision_t d = s_decide_at(r, p, "wenhan", "wenhan-3", "", "灯坏了好几天");
  assert_string_equal(d.lead, "street_office");
  d = s_decide_at(r, p, "wenhan", "wenhan-1", "", "灯坏了好几天");
  assert_string_equal(d.lead, "wenhan.pm");
  assert_int_equal(d.color, WHISTLE__COLOR__COLOR_GREEN);
  assert_string_equal(d.place, "compound");
  /* words in the text over the grid; the address over the grid */
  d = s_decide_at(r, p, "wenhan", "wenhan-3", "", "小区里的灯坏了好几天");
  assert_string_equal(d.lead, "wenhan.pm");
  d = s_decide_at(r, p, "wenhan", "wenhan-1", "", "马路上的灯坏了好几天");
  assert_string_equal(d.lead, "street_office");
  d = s_decide_at(r, p, "wenhan", "wenhan-3", "文涵小区楼道", "灯坏了好几天");
  assert_string_equal(d.lead, "wenhan.pm");
  /* a place word inside a longer one of the other kind says nothing:
   * "小区大门外" is outside the compound, though "小区" is in it (a word
   * longer than the segmenter keeps whole) */
  d = s_decide_at(r, p, "wenhan", "wenhan-1", "", "小区大门外的灯坏了好几天");
  assert_string_equal(d.lead, "street_office");
  d = s_decide_at(r, p, "wenhan", "wenhan-1", "文涵小区大门外", "灯坏了好几天");
  assert_string_equal(d.lead, "street_office");
  /* one outside it still counts: both said, the grid decides */
  d = s_decide_at(r, p, "wenhan", "wenhan-1", "", "小区大门外的灯坏了，小区里的也坏了");
  assert_string_equal(d.lead, "wenhan.pm");
  /* no place known: the class's own owner */
  d = s_decide_at(r, p, "nowhere", "", "", "灯坏了好几天");
  assert_string_equal(d.lead, "street_office");
  /* a class the call-taker chose has its owner by place too; the words
   * of the text still say where, though they decide no class */
  wh_report_t rep = {.category = "lamp", .text = "坏了好几天了", .channel = "hotline",
                     .community = "wenhan", .grid = "wenhan-1", .address = ""};
  wh_rules_decide(r, p->org, &rep, &d);
  assert_string_equal(d.rule, "category:lamp");
  assert_string_equal(d.lead, "wenhan.pm");
  assert_string_equal(d.place, "compound");
  assert_int_equal(d.color, WHISTLE__COLOR__COLOR_GREEN);
  rep.text = "马路上的那个坏了好几天了";
  wh_rules_decide(r, p->org, &rep, &d);
  assert_string_equal(d.lead, "street_office");
  rep.grid = "wenhan-3";
  rep.text = "小区里的坏了，着火了";
  wh_rules_decide(r, p->org, &rep, &d); /* danger takes the lead; the compound's owner joins */
  assert_string_equal(d.lead, "fire");
  int has_pm = 0;
  for (int i = 0; i < d.nco; i++) {
    has_pm |= !strcmp(d.co[i], "wenhan.pm");
    assert_string_not_equal(d.co[i], "center"); /* the owner is named, not lost to the center */
  }
  assert_true(has_pm);
  wh_rules_destroy(&r);
}

/* A resident who writes traditional characters is read as one who writes
 * simplified ones; a simplified text is passed as it is. */
static void catalogue_reads_traditional_characters(void **state) {
  s_policy_t *p = *state;
  char err[512];
  wh_rules_t *r = s_catalogue(p, s_test_classes, err, sizeof err);
  if (!r) fail_msg("%s", err);
  const char *simple = "楼上水管爆了，往下滴";
  assert_ptr_equal(wh_words_simplified(r->words, simple), simple);
  assert_string_equal(wh_words_simplified(r->words, "樓道裡堆滿了雜物"), "楼道里堆满了杂物");
  wh_decision_t s = s_decide_at(r, p, "wenhan", "wenhan-1", "", simple);
  wh_decision_t t = s_decide_at(r, p, "wenhan", "wenhan-1", "", "樓上水管爆了，往下滴");
  assert_string_equal(t.klass, "upstairs");
  assert_string_equal(t.klass, s.klass);
  assert_string_equal(t.lead, s.lead);
  assert_string_equal(t.danger, s.danger);
  assert_string_equal(t.words, s.words);
  /* negation reads the same too */
  t = s_decide_at(r, p, "wenhan", "wenhan-3", "", "路燈沒有冒煙，就是不亮");
  assert_string_equal(t.klass, "lamp");
  assert_string_equal(t.danger, "");
  wh_rules_destroy(&r);
}

static void catalogue_danger_over_any_class(void **state) {
  s_policy_t *p = *state;
  char err[512];
  wh_rules_t *r = s_catalogue(p, s_test_classes, err, sizeof err);
  if (!r) fail_msg("%s", err);
  /* a class of the signal's own group says whose the emergency is: a pipe
   * burst upstairs is the property's, the water company joins it */
  wh_decision_t u = s_decide_at(r, p, "wenhan", "wenhan-1", "", "楼上水管爆了，往下滴");
  assert_string_equal(u.klass, "upstairs");
  assert_string_equal(u.lead, "wenhan.pm");
  assert_int_equal(u.level, 1);
  assert_string_equal(u.danger, "main");
  assert_string_equal(u.co[0], "water");
  u = s_decide_at(r, p, "wenhan", "wenhan-1", "", "马路上水管爆了");
  assert_string_equal(u.klass, "main");
  assert_string_equal(u.lead, "water");
  /* a signal that takes the lead: fire leads, the lamp's owner joins */
  wh_decision_t d = s_decide_at(r, p, "wenhan", "wenhan-3", "", "路灯着火了");
  assert_string_equal(d.klass, "fire");
  assert_string_equal(d.lead, "fire");
  int has_office = 0, has_police = 0;
  for (int i = 0; i < d.nco; i++) {
    has_office |= !strcmp(d.co[i], "street_office");
    has_police |= !strcmp(d.co[i], "police");
  }
  assert_true(has_office && has_police);
  /* a signal that only raises: the crack stays the class, at level 1,
   * with drainage added */
  d = s_decide_at(r, p, "wenhan", "", "", "墙上裂缝进水，家里淹了");
  assert_string_equal(d.klass, "crack");
  assert_string_equal(d.lead, "housing");
  assert_int_equal(d.level, 1);
  assert_string_equal(d.danger, "flood");
  assert_int_equal(d.nco, 1);
  assert_string_equal(d.co[0], "drainage");
  /* and over a category the channel gave */
  wh_report_t rep = {.category = "lamp", .text = "灯不亮，楼道淹了", .channel = "hotline",
                     .community = "wenhan", .grid = "", .address = ""};
  wh_rules_decide(r, p->org, &rep, &d);
  assert_string_equal(d.klass, "lamp");
  assert_int_equal(d.level, 1);
  /* a signal that takes the lead takes it from the channel's category too:
   * the category's owner stays on as a co-party */
  rep.text = "灯那里冒烟了";
  wh_rules_decide(r, p->org, &rep, &d);
  assert_string_equal(d.klass, "fire");
  assert_string_equal(d.lead, "fire");
  assert_string_equal(d.rule, "danger:fire over category:lamp");
  assert_string_equal(d.words, "冒烟");
  has_office = 0;
  for (int i = 0; i < d.nco; i++) has_office |= !strcmp(d.co[i], "street_office");
  assert_true(has_office);
  wh_rules_destroy(&r);
}

static void catalogue_errors_name_file_and_line(void **state) {
  s_policy_t *p = *state;
  char err[512];
  assert_null(s_catalogue(p,
                          "{ code = \"a\"; name = \"甲\"; group = \"g\"; color = \"red\"; level = 2; lead = \"fire\"; says = [\"火\"]; },\n"
                          "{ code = \"b\"; name = \"乙\"; group = \"nogroup\"; color = \"red\"; level = 2; lead = \"fire\"; says = [\"火\"]; }",
                          err, sizeof err));
  assert_non_null(strstr(err, "whistle-test-cat.conf:7"));
  assert_non_null(strstr(err, "nogroup"));
  assert_null(s_catalogue(p, "{ code = \"a\"; name = \"甲\"; group = \"g\"; color = \"red\"; level = 2; lead = \"fire\"; }",
                          err, sizeof err));
  assert_non_null(strstr(err, "says"));
  assert_null(s_catalogue(p, "{ code = \"a\"; name = \"甲\"; group = \"g\"; color = \"red\"; level = 2; lead = \"fire\";\n"
                             "  compound = { lead = \"nobody\"; }; says = [\"火\"]; }",
                          err, sizeof err));
  assert_non_null(strstr(err, "nobody"));
}

/* The demo catalogue: every class in a known group with at least five ways
 * of saying it, every group used, and intake's categories are its classes. */
static void catalogue_demo_is_whole(void **state) {
  s_policy_t *p = *state;
  size_t from_catalogue = 0;
  for (size_t i = 0; i < p->rules->ncategories; i++) {
    const wh_category_t *c = &p->rules->categories[i];
    assert_non_null(c->group);
    if (c->nphrases < 5) fail_msg("class %s has %zu phrases, fewer than five", c->code, c->nphrases);
    /* At least three say it as residents do, with the object and its
     * symptom ("垃圾 没人收") or in words that are not the class's name. */
    size_t colloquial = 0;
    for (size_t k = 0; k < c->nphrases; k++) {
      const wh_phrase_t *ph = &c->phrases[k];
      int names = 0; /* a lone word that is the name, among others or not */
      for (size_t a = 0; ph->nterms == 1 && ph->terms[0].alts[a]; a++)
        names |= !strcmp(ph->terms[0].alts[a], c->name);
      colloquial += !names;
    }
    if (colloquial < 3) fail_msg("class %s has %zu colloquial phrases, fewer than three", c->code, colloquial);
    from_catalogue++;
  }
  assert_true(from_catalogue >= 200);
  for (size_t g = 0; g < p->rules->ngroups; g++) {
    int used = 0;
    for (size_t i = 0; i < p->rules->ncategories && !used; i++)
      used = !strcmp(p->rules->categories[i].group, p->rules->groups[g].code);
    if (!used) fail_msg("group %s has no class", p->rules->groups[g].code);
  }
  unlink("/tmp/whistle-test-cat.conf");
  unlink("/tmp/whistle-test-cat-rules.conf");
}

static void rules_errors_name_file_and_line(void **state) {
  s_policy_t *p = *state;
  char err[512];
  const char *path = "/tmp/whistle-test-rules.conf";
  s_write(path,
          "unplaced = { color = \"yellow\"; level = 2; lead = \"center\"; };\n"
          "categories = (\n"
          "  { code = \"noise\"; color = \"green\"; level = 2; lead = \"grid\"; },\n"
          "  { code = \"x\"; color = \"green\"; level = 2; lead = \"nobody\"; }\n"
          ");\n");
  assert_null(wh_rules_load(path, p->org, err, sizeof err));
  assert_non_null(strstr(err, "whistle-test-rules.conf:4"));
  assert_non_null(strstr(err, "nobody"));
  s_write(path, "categories = ( { code = \"noise\" color = 1 } );\n");
  assert_null(wh_rules_load(path, p->org, err, sizeof err));
  assert_non_null(strstr(err, "whistle-test-rules.conf:1"));
  s_write(path,
          "unplaced = { color = \"blue\"; level = 2; lead = \"center\"; };\n"
          "categories = ();\n");
  assert_null(wh_rules_load(path, p->org, err, sizeof err));
  assert_non_null(strstr(err, ":1: colour 'blue'"));
  unlink(path);
}

static Whistle__SubmitTicket s_valid(void) {
  Whistle__SubmitTicket t = WHISTLE__SUBMIT_TICKET__INIT;
  t.source = WHISTLE__SOURCE__SOURCE_HOTLINE;
  t.external_id = "12345-250603-0042";
  t.received_at_ms = T("2025-06-03T09:30:00+08:00");
  t.community = "wenhan";
  t.grid = "wenhan-3";
  t.address = "文诚路思涌路";
  t.category = "sidewalk";
  t.text = "文诚路一侧约300米没有人行道";
  return t;
}

static void validation_front_door(void **state) {
  s_policy_t *p = *state;
  char detail[256];
  int64_t now = T("2026-11-21T12:00:00+08:00");
  Whistle__SubmitTicket t = s_valid();
  assert_int_equal(intake_validate(p->rules, &t, now, detail, sizeof detail), 0);
#define EXPECT(field_change, code)                                                           \
  do {                                                                                       \
    t = s_valid();                                                                           \
    field_change;                                                                            \
    assert_int_equal(intake_validate(p->rules, &t, now, detail, sizeof detail), code);       \
  } while (0)
  EXPECT(t.source = 0, WH_ESOURCE);
  EXPECT(t.source = 99, WH_ESOURCE);
  EXPECT(t.external_id = "", WH_EMISSING);
  EXPECT(t.text = "", WH_EMISSING);
  EXPECT(t.community = "", WH_EMISSING);
  EXPECT(t.community = "wen.han", WH_EFIELD);
  EXPECT(t.grid = "", WH_EMISSING);
  EXPECT(t.text = "\xe4\xbd", WH_EUTF8);
  EXPECT(t.address = "bad\xff", WH_EUTF8);
  EXPECT(t.category = "unicorns", WH_ECATEGORY);
  EXPECT(t.received_at_ms = T("1999-12-31T23:59:59+08:00"), WH_ETIME);
  EXPECT(t.received_at_ms = now + 10 * 60 * 1000, WH_ETIME);
  EXPECT(t.received_at_ms = 0, WH_EMISSING);
  char long_text[INTAKE_MAX_TEXT + 2];
  memset(long_text, 'a', sizeof long_text - 1);
  long_text[sizeof long_text - 1] = '\0';
  EXPECT(t.text = long_text, WH_ETOOLONG);
  Whistle__Reporter rep = WHISTLE__REPORTER__INIT;
  rep.phone = "not a phone";
  EXPECT(t.reporter = &rep, WH_EPHONE);
  Whistle__Location loc = WHISTLE__LOCATION__INIT;
  loc.lat = 95;
  loc.lng = 121;
  EXPECT(t.location = &loc, WH_ELOCATION);
  char *tags[] = {"elderly_alone", "dragon"};
  EXPECT((t.care_tags = tags, t.n_care_tags = 2), WH_EFIELD);
  assert_non_null(strstr(detail, "dragon"));
  /* Backlogs are welcome: a report from last year is fine. */
  EXPECT(t.received_at_ms = T("2025-01-01T00:00:00+08:00"), 0);
#undef EXPECT
}

/* Writes an envelope whose only field is a submit body of the given bytes
 * into out; returns its length. */
static size_t s_submit_frame(const uint8_t *body, size_t len, uint8_t *out) {
  size_t n = 0;
  out[n++] = 0x52; /* field 10 (submit), length-delimited */
  for (size_t v = len;; v >>= 7) {
    out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    if (v <= 0x7f) break;
  }
  memcpy(out + n, body, len);
  return n + len;
}

static void codec_envelopes(void **state) {
  (void)state;
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  Whistle__SubmitTicket t = s_valid();
  env.message_id = "m-1";
  env.ticket_id = "WH00000001";
  env.seq = 3;
  env.body_case = WHISTLE__ENVELOPE__BODY_SUBMIT;
  env.submit = &t;
  uint8_t *buf;
  size_t len;
  assert_int_equal(wh_env_pack(&env, &buf, &len), 0);
  uint8_t stamped[4096];
  memcpy(stamped, buf, len);
  size_t slen = len + wh_env_stamp(77, 123456, 1, stamped + len);
  Whistle__Envelope *out;
  assert_int_equal(wh_env_unpack(stamped, slen, &out), 0);
  assert_string_equal(out->message_id, "m-1");
  assert_int_equal(out->seq, 3);
  assert_int_equal(out->delivery_tag, 77);
  assert_int_equal(out->sent_at_ms, 123456);
  assert_true(out->first_send);
  wh_env_free(out);
  /* a resend of the same stored bytes does not claim to be the first */
  slen = len + wh_env_stamp(77, 123999, 0, stamped + len);
  assert_int_equal(wh_env_unpack(stamped, slen, &out), 0);
  assert_false(out->first_send);
  assert_int_equal(out->sent_at_ms, 123999);
  assert_int_equal(out->body_case, WHISTLE__ENVELOPE__BODY_SUBMIT);
  assert_string_equal(out->submit->text, t.text);
  wh_env_free(out);
  assert_int_equal(wh_env_unpack(buf, WH_FRAME_MAX + 1, &out), WH_ETOOBIG);
  assert_null(out);
  assert_int_equal(wh_env_unpack("\xff\xff\xff\xff\xff", 5, &out), WH_EDECODE);
  assert_int_equal(wh_env_unpack(buf, len / 2, &out), WH_EDECODE); /* truncated */
  /* A field numbered 0 is not protobuf, even written as a two-byte key that
   * protobuf-c would take: refused on the envelope and inside a message it
   * carries, which triage or notify would otherwise forward to a service
   * that refuses it. */
  uint8_t zero[4096];
  memcpy(zero, buf, len);
  memcpy(zero + len, "\x82\x00\x00", 3);
  assert_int_equal(wh_env_unpack(zero, len + 3, &out), WH_EDECODE);
  assert_null(out);
  assert_int_equal(wh_env_unpack(zero, len, &out), 0); /* the same bytes without it */
  wh_env_free(out);
  size_t rlen = whistle__submit_ticket__get_packed_size(&t);
  uint8_t *rep = malloc(rlen + 3);
  whistle__submit_ticket__pack(&t, rep);
  memcpy(rep + rlen, "\x82\x00\x00", 3);
  assert_int_equal(wh_env_unpack(zero, s_submit_frame(rep, rlen + 3, zero), &out), WH_EDECODE);
  assert_int_equal(wh_env_unpack(zero, s_submit_frame(rep, rlen, zero), &out), 0);
  assert_string_equal(out->submit->text, t.text);
  wh_env_free(out);
  free(rep);
  /* A NUL in a string, on the envelope or in the report inside it, would
   * cut the string where protobuf-c keeps it: refused. A NUL in bytes (a
   * batch's envelopes, a feed item's frame) is data. */
  const char *nul_at[] = {"m-1", t.text};
  for (int i = 0; i < 2; i++) {
    uint8_t *hit = memmem(buf, len, nul_at[i], strlen(nul_at[i]));
    assert_non_null(hit);
    memcpy(zero, buf, len);
    zero[hit - buf + 1] = '\0';
    assert_int_equal(wh_env_unpack(zero, len, &out), WH_ENUL);
    assert_null(out);
  }
  Whistle__Batch batch = WHISTLE__BATCH__INIT;
  ProtobufCBinaryData bin = {3, (uint8_t *)"a\0b"};
  batch.envelopes = &bin;
  batch.n_envelopes = 1;
  Whistle__Envelope benv = WHISTLE__ENVELOPE__INIT;
  benv.body_case = WHISTLE__ENVELOPE__BODY_BATCH;
  benv.batch = &batch;
  uint8_t *bbuf;
  size_t blen;
  assert_int_equal(wh_env_pack(&benv, &bbuf, &blen), 0);
  assert_int_equal(wh_env_unpack(bbuf, blen, &out), 0);
  wh_env_free(out);
  free(bbuf);
  free(buf);
  char a[37], b[37];
  wh_uuid(a);
  wh_uuid(b);
  assert_int_equal(strlen(a), 36);
  assert_string_not_equal(a, b);
  /* RFC 4122 version 4: 8-4-4-4-12 lower-case hex, "4" and a variant of 8-b. */
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) assert_int_equal(a[i], '-');
    else assert_non_null(strchr("0123456789abcdef", a[i]));
  }
  assert_int_equal(a[14], '4');
  assert_non_null(strchr("89ab", a[19]));
}

/* Envelopes unpacked into an arena read as unpacked with malloc, many at a
 * time and one larger than a block, round after round; what does not
 * decode is refused as before. */
static void codec_arena(void **state) {
  (void)state;
  Whistle__SubmitTicket t = s_valid();
  static char big[200 * 1024];
  memset(big, 'a', sizeof big - 1);
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.ticket_id = "WH00000002";
  env.body_case = WHISTLE__ENVELOPE__BODY_SUBMIT;
  env.submit = &t;
  uint8_t *buf, *bigbuf;
  size_t len, biglen;
  assert_int_equal(wh_env_pack(&env, &buf, &len), 0);
  t.text = big;
  assert_int_equal(wh_env_pack(&env, &bigbuf, &biglen), 0);
  t = s_valid();
  wh_arena_t *a = wh_arena_new();
  assert_non_null(a);
  for (int round = 0; round < 3; round++) {
    Whistle__Envelope *out[300];
    for (int i = 0; i < 300; i++) {
      int isbig = i == 150;
      assert_int_equal(wh_env_unpack_in(a, isbig ? bigbuf : buf, isbig ? biglen : len, &out[i]), 0);
    }
    for (int i = 0; i < 300; i++) {
      assert_string_equal(out[i]->ticket_id, "WH00000002");
      assert_string_equal(out[i]->submit->external_id, t.external_id);
      assert_int_equal(strlen(out[i]->submit->text), i == 150 ? sizeof big - 1 : strlen(t.text));
    }
    Whistle__Envelope *bad;
    assert_int_equal(wh_env_unpack_in(a, buf, len / 2, &bad), WH_EDECODE);
    assert_null(bad);
    wh_arena_reset(a);
  }
  wh_arena_destroy(&a);
  assert_null(a);
  wh_arena_destroy(&a); /* NULL is allowed */
  free(buf);
  free(bigbuf);
}

/* What a broken or hostile peer might send: valid frames of every kind,
 * damaged. Each one is refused with WH_EDECODE or decodes to a message that
 * packs again to the same bytes each time, the arena and malloc agree on
 * which, a report that decodes is judged by the front door with a reason,
 * and a batch's envelopes are each taken or refused alone. Under ASan and
 * UBSan this is what shows that no frame reads or writes out of bounds. */
static void codec_survives_mutated_frames(void **state) {
  s_policy_t *p = *state;
  uint8_t *seed[SEED_N];
  size_t seedlen[SEED_N];
  int nseed = s_seed_frames(seed, seedlen);
  assert_int_equal(nseed, SEED_N);
  static uint8_t frame[8192];
  uint64_t rng = 20261122;
  long decoded = 0, refused = 0, judged = 0, inner = 0;
  wh_arena_t *a = wh_arena_new();
  assert_non_null(a);
  char detail[256];
  int64_t now = T("2026-11-21T12:00:00+08:00");
  for (long i = 0; i < 40000; i++) {
    int k = (int)(s_mut_next(&rng) % (uint64_t)nseed);
    assert_true(seedlen[k] + 64 <= sizeof frame);
    size_t n = s_mutate(&rng, seed[k], seedlen[k], frame, sizeof frame);
    Whistle__Envelope *m, *ar;
    int rc = wh_env_unpack(frame, n, &m), rca = wh_env_unpack_in(a, frame, n, &ar);
    if (rc != rca) fail_msg("iteration %ld: malloc says %d, arena says %d", i, rc, rca);
    if (rc) {
      assert_true(rc == WH_EDECODE || rc == WH_ENUL);
      assert_null(m);
      assert_null(ar);
      refused++;
      continue;
    }
    decoded++;
    assert_int_equal(m->body_case, ar->body_case);
    uint8_t *p1, *p2;
    size_t l1, l2;
    assert_int_equal(wh_env_pack(m, &p1, &l1), 0);
    Whistle__Envelope *again;
    if (wh_env_unpack(p1, l1, &again)) fail_msg("iteration %ld: its own packing does not decode", i);
    assert_int_equal(wh_env_pack(again, &p2, &l2), 0);
    if (l1 != l2 || memcmp(p1, p2, l1)) fail_msg("iteration %ld: packs differently again", i);
    wh_env_free(again);
    free(p1);
    free(p2);
    if (m->body_case == WHISTLE__ENVELOPE__BODY_SUBMIT) {
      detail[0] = '\0';
      if (intake_validate(p->rules, m->submit, now, detail, sizeof detail)) assert_true(detail[0]);
      judged++;
    } else if (m->body_case == WHISTLE__ENVELOPE__BODY_BATCH) {
      for (size_t e = 0; e < m->batch->n_envelopes; e++) {
        Whistle__Envelope *one;
        rc = wh_env_unpack_in(a, m->batch->envelopes[e].data, m->batch->envelopes[e].len, &one);
        assert_true(rc == 0 || rc == WH_EDECODE || rc == WH_ENUL);
        inner++;
      }
    }
    wh_env_free(m);
    if (i % 256 == 0) wh_arena_reset(a);
  }
  wh_arena_destroy(&a);
  for (int k = 0; k < nseed; k++) free(seed[k]);
  /* The damage must be neither all fatal nor all harmless, or this proves
   * little: both kinds come in their thousands. */
  print_message("%ld decoded (%ld reports judged, %ld batch envelopes), %ld refused\n", decoded,
                judged, inner, refused);
  assert_true(decoded > 2000 && refused > 20000 && judged > 150 && inner > 600);
}

/* Key pairs as keygen writes them, and the keyring a service reads: the
 * secret file private, each public key known by its file's name, a key
 * added to the directory known after a reload, a bad key file refused with
 * its name, and a pair never replaced. */
static void keys_and_keyring(void **state) {
  (void)state;
  char dir[] = "/tmp/wh-keys-XXXXXX"; /* mkdtemp's template */
  char err[512], path[600];
  assert_non_null(mkdtemp(dir));
  assert_int_equal(wh_keygen(dir, "intake", err, sizeof err), 0);
  assert_int_equal(wh_keygen(dir, "water", err, sizeof err), 0);
  assert_int_equal(wh_keygen(dir, "water", err, sizeof err), WH_EINVAL);
  assert_int_equal(wh_keygen(dir, "../etc/x", err, sizeof err), WH_EFIELD);
  struct stat st;
  snprintf(path, sizeof path, "%s/water.key", dir);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  wh_keys_t *k = wh_keys_load(dir, "intake", err, sizeof err);
  assert_non_null(k);
  char z85[64];
  unsigned char bin[32];
  snprintf(path, sizeof path, "%s/water.pub", dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  assert_non_null(fgets(z85, sizeof z85, f));
  fclose(f);
  z85[40] = '\0';
  assert_non_null(zmq_z85_decode(bin, z85));
  assert_string_equal(wh_keys_name(k, bin), "water");
  bin[0] ^= 1;
  assert_null(wh_keys_name(k, bin));
  assert_int_equal(wh_keygen(dir, "xiangdong.rc", err, sizeof err), 0);
  snprintf(path, sizeof path, "%s/xiangdong.rc.pub", dir);
  f = fopen(path, "r");
  assert_non_null(fgets(z85, sizeof z85, f));
  fclose(f);
  z85[40] = '\0';
  zmq_z85_decode(bin, z85);
  assert_null(wh_keys_name(k, bin));
  assert_int_equal(wh_keys_reload(k, err, sizeof err), 0);
  assert_string_equal(wh_keys_name(k, bin), "xiangdong.rc");
  /* a damaged public key: the reload is refused, the keyring stays */
  snprintf(path, sizeof path, "%s/bad.pub", dir);
  f = fopen(path, "w");
  fputs("not a key\n", f);
  fclose(f);
  assert_int_equal(wh_keys_reload(k, err, sizeof err), WH_ECONFIG);
  assert_non_null(strstr(err, "bad.pub"));
  assert_string_equal(wh_keys_name(k, bin), "xiangdong.rc");
  wh_keys_destroy(&k);
  assert_null(wh_keys_load(dir, "nobody", err, sizeof err));
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* The work order's table, row by row and refusal by refusal: who may do
 * what from where, and what it does. Times in hours from an order
 * dispatched at 0: the return window ends at 48, the resolve deadline at
 * 120, an extension may reach 240 more, the feedback window ends at 24
 * after resolve (here at 150), a closed order may be reopened until 900. */
#define H(x) ((int64_t)(x) * 3600000)
static void work_order_machine(void **state) {
  (void)state;
  const wo_order_t base = {.version = 3, .return_until_ms = H(48), .resolve_due_ms = H(120),
                           .extension_max_ms = H(240), .feedback_until_ms = H(150),
                           .reopen_until_ms = H(900), .ladder_left = 3};
  enum { L = WR_LEAD, C = WR_CO, X = WR_CENTER, T = WR_HOTLINE };
  static const struct {
    wo_state_t from;
    unsigned roles;
    wo_action_t action;
    int hour;                  /* now */
    const char *reason;
    int until_hour;
    wo_rating_t rating;
    int unresolved, part_signed, pending, feedback, version;
    wo_code_t code;
    wo_state_t next;
    unsigned effect; /* one that must be among the effects */
  } cases[] = {
      /* sign: the lead, from dispatched or reopened; a co-party for its part */
      {WO_DISPATCHED, L, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_SIGNED, WE_SIGN_MET},
      {WO_REOPENED, L, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_SIGNED, WE_SIGN_MET},
      /* the reporter hears it is signed for, and whom it was sent to */
      {WO_DISPATCHED, L, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_SIGNED, WE_TELL_REPORTER},
      {WO_RETURNED, X, WA_ASSIGN, 50, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_DISPATCHED, WE_TELL_REPORTER},
      {WO_SIGNED, L, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_SIGNED, 0},
      {WO_SIGNED, C, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_SIGNED, WE_PART_SIGNED},
      {WO_SIGNED, C, WA_SIGN, 1, 0, 0, 0, 0, 1, 0, 0, 0, WO_WRONG_STATE, WO_SIGNED, 0},
      {WO_DISPATCHED, T, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_FORBIDDEN, WO_DISPATCHED, 0},
      {WO_DISPATCHED, 0, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_FORBIDDEN, WO_DISPATCHED, 0},
      {WO_MERGED, L, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_MERGED, 0},
      /* progress: lead and co-party, once signed; the note to the reporter */
      {WO_SIGNED, L, WA_PROGRESS, 2, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_IN_PROGRESS, WE_TELL_REPORTER},
      {WO_DISPATCHED, L, WA_PROGRESS, 2, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_DISPATCHED, 0},
      {WO_IN_PROGRESS, C, WA_PROGRESS, 2, 0, 0, 0, 0, 1, 0, 0, 0, WO_OK, WO_IN_PROGRESS, WE_TELL_REPORTER},
      {WO_IN_PROGRESS, C, WA_PROGRESS, 2, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_IN_PROGRESS, 0},
      {WO_IN_PROGRESS, X, WA_PROGRESS, 2, 0, 0, 0, 0, 0, 0, 0, 0, WO_FORBIDDEN, WO_IN_PROGRESS, 0},
      /* return: the lead, within the window, with a reason of the list */
      {WO_SIGNED, L, WA_RETURN, 47, "not_ours", 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_RETURNED, WE_RETURN_COUNTED},
      {WO_DISPATCHED, L, WA_RETURN, 1, "wrong_place", 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_RETURNED, WE_TO_CENTER},
      {WO_SIGNED, L, WA_RETURN, 49, "not_ours", 0, 0, 0, 0, 0, 0, 0, WO_TOO_LATE, WO_SIGNED, 0},
      {WO_SIGNED, L, WA_RETURN, 1, "lazy", 0, 0, 0, 0, 0, 0, 0, WO_BAD_REASON, WO_SIGNED, 0},
      {WO_SIGNED, L, WA_RETURN, 1, NULL, 0, 0, 0, 0, 0, 0, 0, WO_BAD_REASON, WO_SIGNED, 0},
      {WO_IN_PROGRESS, L, WA_RETURN, 1, "other", 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_IN_PROGRESS, 0},
      {WO_SIGNED, C, WA_RETURN, 1, "other", 0, 0, 0, 0, 0, 0, 0, WO_FORBIDDEN, WO_SIGNED, 0},
      /* assign and uphold: the center */
      {WO_RETURNED, X, WA_ASSIGN, 50, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_DISPATCHED, WE_CLOCKS_RESTART},
      {WO_IN_PROGRESS, X, WA_ASSIGN, 50, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_DISPATCHED, WE_CLOCKS_RESTART},
      {WO_CLOSED, X, WA_ASSIGN, 50, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_CLOSED, 0},
      {WO_RETURNED, L, WA_ASSIGN, 50, 0, 0, 0, 0, 0, 0, 0, 0, WO_FORBIDDEN, WO_RETURNED, 0},
      {WO_RETURNED, X, WA_UPHOLD, 50, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_SIGNED, 0},
      {WO_SIGNED, X, WA_UPHOLD, 50, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_SIGNED, 0},
      /* extend: the lead, before the deadline, not beyond the maximum */
      {WO_IN_PROGRESS, L, WA_EXTEND, 100, 0, 200, 0, 0, 0, 0, 0, 0, WO_OK, WO_IN_PROGRESS, WE_EXTENSION_ASKED},
      {WO_IN_PROGRESS, L, WA_EXTEND, 121, 0, 200, 0, 0, 0, 0, 0, 0, WO_TOO_LATE, WO_IN_PROGRESS, 0},
      {WO_IN_PROGRESS, L, WA_EXTEND, 100, 0, 361, 0, 0, 0, 0, 0, 0, WO_TOO_FAR, WO_IN_PROGRESS, 0},
      {WO_IN_PROGRESS, L, WA_EXTEND, 100, 0, 110, 0, 0, 0, 0, 0, 0, WO_BAD_TIME, WO_IN_PROGRESS, 0},
      {WO_IN_PROGRESS, L, WA_EXTEND, 100, 0, 200, 0, 0, 0, 1, 0, 0, WO_WRONG_STATE, WO_IN_PROGRESS, 0},
      {WO_DISPATCHED, L, WA_EXTEND, 100, 0, 200, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_DISPATCHED, 0},
      /* approve and refuse: the center, a pending extension */
      {WO_IN_PROGRESS, X, WA_APPROVE, 101, 0, 0, 0, 0, 0, 1, 0, 0, WO_OK, WO_IN_PROGRESS, WE_DEADLINE_MOVED},
      {WO_IN_PROGRESS, X, WA_REFUSE, 101, 0, 0, 0, 0, 0, 1, 0, 0, WO_OK, WO_IN_PROGRESS, WE_EXTENSION_REFUSED},
      {WO_IN_PROGRESS, X, WA_APPROVE, 101, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_IN_PROGRESS, 0},
      {WO_IN_PROGRESS, L, WA_APPROVE, 101, 0, 0, 0, 0, 0, 1, 0, 0, WO_FORBIDDEN, WO_IN_PROGRESS, 0},
      /* resolve: the lead; the result to the reporter and the repeats */
      {WO_IN_PROGRESS, L, WA_RESOLVE, 110, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_RESOLVED, WE_TELL_REPEATS},
      {WO_REOPENED, L, WA_RESOLVE, 110, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_RESOLVED, WE_FEEDBACK_CLOCK},
      {WO_DISPATCHED, L, WA_RESOLVE, 110, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_DISPATCHED, 0},
      {WO_IN_PROGRESS, C, WA_RESOLVE, 110, 0, 0, 0, 0, 1, 0, 0, 0, WO_OK, WO_IN_PROGRESS, WE_PART_DONE},
      {WO_IN_PROGRESS, X, WA_RESOLVE, 110, 0, 0, 0, 0, 0, 0, 0, 0, WO_FORBIDDEN, WO_IN_PROGRESS, 0},
      /* feedback: the hotline or the center, on a resolved order */
      {WO_RESOLVED, T, WA_FEEDBACK, 130, 0, 0, WF_SATISFIED, 0, 0, 0, 0, 0, WO_OK, WO_CLOSED, WE_FEEDBACK_NOTED},
      {WO_RESOLVED, X, WA_FEEDBACK, 130, 0, 0, WF_BASICALLY_SATISFIED, 0, 0, 0, 0, 0, WO_OK, WO_CLOSED, 0},
      {WO_RESOLVED, T, WA_FEEDBACK, 130, 0, 0, WF_UNSATISFIED, 0, 0, 0, 0, 0, WO_OK, WO_REOPENED, WE_RESOLVE_RESTART},
      {WO_RESOLVED, T, WA_FEEDBACK, 130, 0, 0, WF_SATISFIED, 1, 0, 0, 0, 0, WO_OK, WO_REOPENED, WE_REOPEN_COUNTED},
      {WO_RESOLVED, T, WA_FEEDBACK, 130, 0, 0, WF_UNREACHABLE, 0, 0, 0, 0, 0, WO_OK, WO_RESOLVED, WE_FEEDBACK_NOTED},
      {WO_RESOLVED, T, WA_FEEDBACK, 130, 0, 0, WF_NONE, 0, 0, 0, 0, 0, WO_BAD_REASON, WO_RESOLVED, 0},
      {WO_RESOLVED, L, WA_FEEDBACK, 130, 0, 0, WF_SATISFIED, 0, 0, 0, 0, 0, WO_FORBIDDEN, WO_RESOLVED, 0},
      {WO_IN_PROGRESS, T, WA_FEEDBACK, 130, 0, 0, WF_SATISFIED, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_IN_PROGRESS, 0},
      /* close: after feedback, or once its window has passed */
      {WO_RESOLVED, X, WA_CLOSE, 140, 0, 0, 0, 0, 0, 0, 1, 0, WO_OK, WO_CLOSED, WE_TELL_REPORTER},
      {WO_RESOLVED, X, WA_CLOSE, 151, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_CLOSED, 0},
      {WO_RESOLVED, X, WA_CLOSE, 140, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_RESOLVED, 0},
      {WO_RESOLVED, T, WA_CLOSE, 151, 0, 0, 0, 0, 0, 0, 0, 0, WO_FORBIDDEN, WO_RESOLVED, 0},
      /* reopen: the center, within its window */
      {WO_CLOSED, X, WA_REOPEN, 800, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_REOPENED, WE_RESOLVE_RESTART},
      {WO_CLOSED, X, WA_REOPEN, 901, 0, 0, 0, 0, 0, 0, 0, 0, WO_TOO_LATE, WO_CLOSED, 0},
      {WO_RESOLVED, X, WA_REOPEN, 800, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_RESOLVED, 0},
      /* void: the center, from dispatched or returned, with a reason */
      {WO_DISPATCHED, X, WA_VOID, 1, "prank", 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_VOID, WE_TELL_REPORTER},
      {WO_RETURNED, X, WA_VOID, 1, "not_street", 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_VOID, 0},
      {WO_RETURNED, X, WA_VOID, 1, "boring", 0, 0, 0, 0, 0, 0, 0, WO_BAD_REASON, WO_RETURNED, 0},
      {WO_SIGNED, X, WA_VOID, 1, "test", 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_SIGNED, 0},
      /* supervise: the center, on any open order; nothing on a void one */
      {WO_IN_PROGRESS, X, WA_SUPERVISE, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_OK, WO_IN_PROGRESS, WE_LADDER_STEP},
      {WO_RESOLVED, X, WA_SUPERVISE, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_RESOLVED, 0},
      {WO_SIGNED, L, WA_SUPERVISE, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_FORBIDDEN, WO_SIGNED, 0},
      {WO_VOID, X, WA_SUPERVISE, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_VOID, 0},
      {WO_MERGED, X, WA_ASSIGN, 1, 0, 0, 0, 0, 0, 0, 0, 0, WO_WRONG_STATE, WO_MERGED, 0},
      /* an action that names an older version changes nothing */
      {WO_DISPATCHED, L, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 2, WO_STALE, WO_DISPATCHED, 0},
      {WO_DISPATCHED, L, WA_SIGN, 1, 0, 0, 0, 0, 0, 0, 0, 3, WO_OK, WO_SIGNED, WE_SIGN_MET},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    wo_order_t o = base;
    o.state = cases[i].from;
    o.before_return = WO_SIGNED;
    o.part_signed = cases[i].part_signed;
    o.extension_pending = cases[i].pending;
    o.feedback_given = cases[i].feedback;
    wo_request_t q = {.action = cases[i].action, .roles = cases[i].roles,
                      .now_ms = H(cases[i].hour), .version = (uint32_t)cases[i].version,
                      .reason = cases[i].reason, .until_ms = H(cases[i].until_hour),
                      .rating = cases[i].rating, .unresolved = cases[i].unresolved};
    wo_outcome_t out = wo_decide(&o, &q);
    if (out.code != cases[i].code || out.next != cases[i].next ||
        (cases[i].effect & out.effects) != cases[i].effect ||
        (out.code != WO_OK && (!out.why || !out.why[0] || out.effects)))
      fail_msg("case %zu: %s by roles %u from %s: %s to %s (effects %#x), expected %s to %s", i,
               wo_action_name(q.action), q.roles, wo_state_name(o.state), wo_code_name(out.code),
               wo_state_name(out.next), out.effects, wo_code_name(cases[i].code),
               wo_state_name(cases[i].next));
  }
  /* supervise with every step of the ladder taken */
  wo_order_t top = base;
  top.state = WO_IN_PROGRESS;
  top.ladder_left = 0;
  wo_request_t sq = {.action = WA_SUPERVISE, .roles = WR_CENTER, .now_ms = H(1)};
  assert_int_equal(wo_decide(&top, &sq).code, WO_WRONG_STATE);
  /* Every action, from every state, by every role: an answer, never a
   * crash, and a refusal moves nothing. */
  for (int st = 0; st < WO_NSTATES; st++)
    for (int a = 0; a < WA_NACTIONS; a++)
      for (unsigned roles = 0; roles < 32; roles++) {
        wo_order_t o = base;
        o.state = (wo_state_t)st;
        wo_request_t q = {.action = (wo_action_t)a, .roles = roles, .now_ms = H(1)};
        wo_outcome_t out = wo_decide(&o, &q);
        assert_true(out.code <= WO_STALE);
        if (out.code != WO_OK) assert_int_equal(out.next, o.state);
        if (st == WO_MERGED || st == WO_VOID) assert_int_not_equal(out.code, WO_OK);
      }
  /* names both ways */
  for (int st = 0; st < WO_NSTATES; st++) assert_int_equal(wo_state_parse(wo_state_name(st)), st);
  for (int a = 0; a < WA_NACTIONS; a++) assert_int_equal(wo_action_parse(wo_action_name(a)), a);
  assert_int_equal(wo_rating_parse("basically_satisfied"), WF_BASICALLY_SATISFIED);
  assert_int_equal(wo_rating_parse(""), -1);
  assert_int_equal(wo_action_parse("delete"), -1);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(codec_arena),
      cmocka_unit_test(utf8_checks),
      cmocka_unit_test(log_lines_escape_hostile_text),
      cmocka_unit_test(log_lines_held_when_too_fast),
      cmocka_unit_test(strings_built_by_appending),
      cmocka_unit_test(phone_masking),
      cmocka_unit_test(time_parsing),
      cmocka_unit_test(calendar_working_days),
      cmocka_unit_test(clocks_per_level),
      cmocka_unit_test(clocks_fire_once),
      cmocka_unit_test(clocks_errors_name_file_and_line),
      cmocka_unit_test(messages_from_templates),
      cmocka_unit_test(org_supervisors_and_names),
      cmocka_unit_test(calendar_errors_name_file_and_line),
      cmocka_unit_test(rules_route_reports_never_seen),
      cmocka_unit_test(rules_category_trusted_over_keywords),
      cmocka_unit_test(rules_keywords_found_anywhere),
      cmocka_unit_test(rules_places_and_unplaced),
      cmocka_unit_test(rules_care_tags_weigh),
      cmocka_unit_test(learn_most_alike_example),
      cmocka_unit_test(rules_learned_from_the_center),
      cmocka_unit_test(rules_errors_name_file_and_line),
      cmocka_unit_test(wordset_finds_every_word_in_one_pass),
      cmocka_unit_test(words_cut_only_the_clauses_asked),
      cmocka_unit_test(catalogue_matches_words_not_parts),
      cmocka_unit_test(catalogue_negation_and_sentences),
      cmocka_unit_test(catalogue_precedence_and_runners_up),
      cmocka_unit_test(catalogue_owner_by_place),
      cmocka_unit_test(catalogue_danger_over_any_class),
      cmocka_unit_test(catalogue_reads_traditional_characters),
      cmocka_unit_test(catalogue_errors_name_file_and_line),
      cmocka_unit_test(catalogue_demo_is_whole),
      cmocka_unit_test(validation_front_door),
      cmocka_unit_test(codec_envelopes),
      cmocka_unit_test(codec_survives_mutated_frames),
      cmocka_unit_test(keys_and_keyring),
      cmocka_unit_test(work_order_machine),
  };
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests_name("unit", tests, s_policy_setup, s_policy_teardown);
}
