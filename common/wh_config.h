/* wh_config - helpers over libconfig for whistle's operator-edited files.
 *
 * Every error a loader reports names the file and line, so an operator can
 * find the mistake; a loader that fails leaves nothing half-loaded. */
#ifndef WH_CONFIG_H
#define WH_CONFIG_H

#include <libconfig.h>
#include <stddef.h>

/* Reads path into cfg (initialised by the call). On failure writes
 * "file:line: text" into err and returns WH_ECONFIG (cfg is destroyed). */
int wh_config_read(config_t *cfg, const char *path, char *err, size_t errlen);
/* Writes "file:line: fmt..." for setting s into err; returns WH_ECONFIG. */
int wh_config_fail(const config_setting_t *s, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Looks up a string member; returns it (borrowed from cfg) or NULL. */
const char *wh_config_str(const config_setting_t *s, const char *name);
/* Copies a list/array of strings (member name) into a NULL-terminated array
 * of strdup'ed strings (*out; free with wh_strv_free). A missing member gives
 * an empty array. Returns 0 or WH_ECONFIG (with err) when an element is not a
 * string. */
int wh_config_strv(const config_setting_t *s, const char *name, char ***out, char *err,
                   size_t errlen);
void wh_strv_free(char **v);
/* Counts a NULL-terminated string array. */
size_t wh_strv_len(char *const *v);

#endif
