/* whistle-notify - party feeds and messages to reporters. */
#include "notify.h"

extern const wh_migration_t *const notify_migrations[];

int main(int argc, char **argv) {
  wh_service_t svc;
  if (wh_service_init(&svc, "notify", argc, argv, notify_migrations)) return 2;
  if (notify_start(&svc)) return wh_service_end(&svc, 2);
  return wh_service_run(&svc);
}
