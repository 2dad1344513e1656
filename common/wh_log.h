/* wh_log - leveled logging with context set once.
 *
 * Every line carries the service name and, while one is set, the ticket and
 * message being worked on: set them with wh_log_ctx() when work on a message
 * starts and clear them when it ends, so no call site repeats them. The macros
 * skip formatting entirely when the level is off. */
#ifndef WH_LOG_H
#define WH_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum { WH_LOG_ERROR = 0, WH_LOG_WARN = 1, WH_LOG_INFO = 2, WH_LOG_DEBUG = 3 };

extern int wh__log_level;

/* Sets the service name printed on every line and the level (from
 * WHISTLE_LOG_LEVEL: error|warn|info|debug, default info). */
void wh_log_init(const char *service);
/* Sets the ticket and message id printed on following lines; NULL clears. */
void wh_log_ctx(const char *ticket_id, const char *message_id);
void wh__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Each place that logs may write WH_LOG_SITE_LINES lines per
 * WH_LOG_SITE_WINDOW_S seconds; the rest of the window's lines from it are
 * counted, and the count is written before its next line. So a peer that
 * sends garbage as fast as it can, each frame refused with a warning, cannot
 * fill the disk that PostgreSQL writes to. */
#define WH_LOG_SITE_LINES 100
#define WH_LOG_SITE_WINDOW_S 10
typedef struct {
  int64_t window_ms;
  unsigned lines;
  unsigned long held;
} wh_log_site_t;
/* Whether the site may write a line now; writes the notes on held lines. */
int wh__log_site(wh_log_site_t *site, int level);

#define WH_LOG(lvl, ...)                                                      \
  do {                                                                        \
    static wh_log_site_t wh__site;                                            \
    if ((lvl) <= wh__log_level && wh__log_site(&wh__site, (lvl)))             \
      wh__log((lvl), __VA_ARGS__);                                            \
  } while (0)
#define wh_error(...) WH_LOG(WH_LOG_ERROR, __VA_ARGS__)
#define wh_warn(...) WH_LOG(WH_LOG_WARN, __VA_ARGS__)
#define wh_info(...) WH_LOG(WH_LOG_INFO, __VA_ARGS__)
#define wh_debug(...) WH_LOG(WH_LOG_DEBUG, __VA_ARGS__)

#endif
