/* wh_config - libconfig with file:line errors. */
#include "wh_config.h"
#include "wh_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wh_config_read(config_t *cfg, const char *path, char *err, size_t errlen) {
  config_init(cfg);
  if (config_read_file(cfg, path) == CONFIG_TRUE) return 0;
  if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
    snprintf(err, errlen, "%s: cannot read file", path);
  else
    snprintf(err, errlen, "%s:%d: %s", config_error_file(cfg) ? config_error_file(cfg) : path,
             config_error_line(cfg), config_error_text(cfg));
  config_destroy(cfg);
  return WH_ECONFIG;
}

int wh_config_fail(const config_setting_t *s, char *err, size_t errlen, const char *fmt, ...) {
  int n = snprintf(err, errlen, "%s:%d: ",
                   config_setting_source_file(s) ? config_setting_source_file(s) : "?",
                   config_setting_source_line(s));
  if (n >= 0 && (size_t)n < errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return WH_ECONFIG;
}

const char *wh_config_str(const config_setting_t *s, const char *name) {
  const char *v = NULL;
  if (config_setting_lookup_string(s, name, &v) != CONFIG_TRUE) return NULL;
  return v;
}

void wh_strv_free(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

size_t wh_strv_len(char *const *v) {
  size_t n = 0;
  while (v && v[n]) n++;
  return n;
}

int wh_config_strv(const config_setting_t *s, const char *name, char ***out, char *err,
                   size_t errlen) {
  config_setting_t *list = config_setting_lookup((config_setting_t *)s, name);
  int n = list ? config_setting_length(list) : 0;
  if (list && !config_setting_is_aggregate(list))
    return wh_config_fail(list, err, errlen, "'%s' must be a list of strings", name);
  char **v = calloc((size_t)n + 1, sizeof *v);
  if (!v) return WH_ENOMEM;
  for (int i = 0; i < n; i++) {
    const char *str = config_setting_get_string_elem(list, i);
    if (!str || !*str) {
      wh_strv_free(v);
      return wh_config_fail(config_setting_get_elem(list, (unsigned)i), err, errlen,
                            "'%s' element %d must be a non-empty string", name, i + 1);
    }
    v[i] = strdup(str);
  }
  *out = v;
  return 0;
}
