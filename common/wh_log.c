/* wh_log - lines to stderr: time, level, service, context, text.
 *
 * One entry is one line of valid UTF-8, whatever it quotes: ids and text
 * that came from a peer, or a database error with its DETAIL on the next
 * line. A newline, tab or carriage return is written \n, \t or \r, a
 * backslash \\, and any other control character or byte that is not
 * UTF-8 \xNN, so a hostile report cannot forge a line of its own or break
 * the tools that read the log. */
#include "wh_log.h"
#include "wh_clock.h"
#include "wh_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int wh__log_level = WH_LOG_INFO;
static char s_service[32] = "whistle";
static char s_ticket[64];
static char s_msg[64];

void wh_log_init(const char *service) {
  snprintf(s_service, sizeof s_service, "%s", service);
  const char *lv = getenv("WHISTLE_LOG_LEVEL");
  if (!lv) return;
  if (!strcmp(lv, "error")) wh__log_level = WH_LOG_ERROR;
  else if (!strcmp(lv, "warn")) wh__log_level = WH_LOG_WARN;
  else if (!strcmp(lv, "debug")) wh__log_level = WH_LOG_DEBUG;
  else wh__log_level = WH_LOG_INFO;
}

void wh_log_ctx(const char *ticket_id, const char *message_id) {
  wh_str_copy(s_ticket, sizeof s_ticket, ticket_id); /* per message: no formatting */
  wh_str_copy(s_msg, sizeof s_msg, message_id);
}

void wh__log(int level, const char *fmt, ...) {
  static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
  struct timespec ts;
  struct tm tm;
  char when[32];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  char line[2048];
  int n = snprintf(line, sizeof line, "%s.%03ldZ %-5s %s", when, ts.tv_nsec / 1000000,
                   names[level], s_service);
  if (s_ticket[0] && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - n, " ticket=%s", s_ticket);
  if (s_msg[0] && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - n, " msg=%s", s_msg);
  if (n < (int)sizeof line - 2) {
    line[n++] = ':';
    line[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
  }
  if (n >= (int)sizeof line) n = sizeof line - 1;
  while (n > 0 && line[n - 1] == '\n') n--; /* libpq ends its messages with one */
  char out[4 * sizeof line + 2];
  size_t o = 0;
  for (size_t i = 0; i < (size_t)n;) {
    unsigned char c = (unsigned char)line[i];
    size_t k = wh_utf8_char(line + i, (size_t)n - i);
    if (k && c != '\\' && !wh_utf8_control(line + i, k)) {
      memcpy(out + o, line + i, k);
      o += k;
      i += k;
      continue;
    }
    i++; /* escaped a byte at a time */
    if (c == '\\' || c == '\n' || c == '\t' || c == '\r') {
      out[o++] = '\\';
      out[o++] = c == '\\' ? '\\' : c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
    } else {
      static const char hex[] = "0123456789abcdef";
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o++] = '\n';
  fwrite(out, 1, o, stderr);
}

int wh__log_site(wh_log_site_t *site, int level) {
  int64_t now = wh_clock_mono_ms();
  if (site->lines == 0 || now < site->window_ms ||
      now - site->window_ms >= WH_LOG_SITE_WINDOW_S * 1000) {
    if (site->held)
      wh__log(level, "%lu more lines like the next were not logged in %d s", site->held,
              WH_LOG_SITE_WINDOW_S);
    site->window_ms = now;
    site->lines = 0;
    site->held = 0;
  }
  if (site->lines < WH_LOG_SITE_LINES) {
    site->lines++;
    return 1;
  }
  if (site->held++ == 0)
    wh__log(level, "lines like the one before come too fast: the rest of %d s are counted, not"
            " logged", WH_LOG_SITE_WINDOW_S);
  return 0;
}
