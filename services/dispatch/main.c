/* whistle-dispatch - work orders on a clock. */
#include "dispatch.h"

extern const wh_migration_t *const dispatch_migrations[];

int main(int argc, char **argv) {
  wh_service_t svc;
  if (wh_service_init(&svc, "dispatch", argc, argv, dispatch_migrations)) return 2;
  if (dispatch_start(&svc)) return wh_service_end(&svc, 2);
  return wh_service_run(&svc);
}
