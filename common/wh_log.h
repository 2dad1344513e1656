/* wh_log - leveled logging with context set once.
 *
 * Every line carries the service name and, while one is set, the ticket and
 * message being worked on: set them with wh_log_ctx() when work on a message
 * starts and clear them when it ends, so no call site repeats them. The macros
 * skip formatting entirely when the level is off. */
#ifndef WH_LOG_H
#define WH_LOG_H

#include <stdarg.h>

enum { WH_LOG_ERROR = 0, WH_LOG_WARN = 1, WH_LOG_INFO = 2, WH_LOG_DEBUG = 3 };

extern int wh__log_level;

/* Sets the service name printed on every line and the level (from
 * WHISTLE_LOG_LEVEL: error|warn|info|debug, default info). */
void wh_log_init(const char *service);
/* Sets the ticket and message id printed on following lines; NULL clears. */
void wh_log_ctx(const char *ticket_id, const char *message_id);
void wh__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define WH_LOG(lvl, ...)                                                      \
  do {                                                                        \
    if ((lvl) <= wh__log_level) wh__log((lvl), __VA_ARGS__);                  \
  } while (0)
#define wh_error(...) WH_LOG(WH_LOG_ERROR, __VA_ARGS__)
#define wh_warn(...) WH_LOG(WH_LOG_WARN, __VA_ARGS__)
#define wh_info(...) WH_LOG(WH_LOG_INFO, __VA_ARGS__)
#define wh_debug(...) WH_LOG(WH_LOG_DEBUG, __VA_ARGS__)

#endif
