/* wh_err - the error table's readers. */
#include "wh_err.h"
#include "whistle.pb-c.h"

const char *wh_strerror(int err) {
  switch (err) {
  case WH_OK: return "ok";
#define X(name, text) case WH_E##name: return text;
    WH_ERRNO_MAP(X)
#undef X
  default: return "unknown error";
  }
}

const char *wh_err_name(int err) {
  switch (err) {
  case WH_OK: return "OK";
#define X(name, text) case WH_E##name: return "E" #name;
    WH_ERRNO_MAP(X)
#undef X
  default: return "EUNKNOWN";
  }
}

int wh_err_to_wire(int err) {
  switch (err) {
  case WH_OK: return WHISTLE__ERROR_CODE__ERR_NONE;
  case WH_EDECODE: return WHISTLE__ERROR_CODE__ERR_DECODE;
  case WH_ETOOBIG: return WHISTLE__ERROR_CODE__ERR_TOO_LARGE;
  case WH_EMISSING: return WHISTLE__ERROR_CODE__ERR_MISSING_FIELD;
  case WH_ETOOLONG: return WHISTLE__ERROR_CODE__ERR_FIELD_TOO_LONG;
  case WH_EUTF8: return WHISTLE__ERROR_CODE__ERR_BAD_UTF8;
  case WH_ESOURCE: return WHISTLE__ERROR_CODE__ERR_UNKNOWN_SOURCE;
  case WH_ECATEGORY: return WHISTLE__ERROR_CODE__ERR_UNKNOWN_CATEGORY;
  case WH_ETIME: return WHISTLE__ERROR_CODE__ERR_BAD_TIME;
  case WH_EPHONE: return WHISTLE__ERROR_CODE__ERR_BAD_PHONE;
  case WH_ELOCATION: return WHISTLE__ERROR_CODE__ERR_BAD_LOCATION;
  case WH_EFIELD: return WHISTLE__ERROR_CODE__ERR_BAD_FIELD;
  case WH_EUNEXPECTED: return WHISTLE__ERROR_CODE__ERR_UNEXPECTED;
  case WH_EORDER: return WHISTLE__ERROR_CODE__ERR_OUT_OF_ORDER;
  case WH_EPARTY: return WHISTLE__ERROR_CODE__ERR_UNKNOWN_PARTY;
  case WH_EFORBIDDEN: return WHISTLE__ERROR_CODE__ERR_FORBIDDEN;
  case WH_ENOTFOUND: return WHISTLE__ERROR_CODE__ERR_NOT_FOUND;
  case WH_ENUL: return WHISTLE__ERROR_CODE__ERR_BAD_FIELD;
  case WH_EWRONGSTATE: return WHISTLE__ERROR_CODE__ERR_WRONG_STATE;
  case WH_ETOOLATE: return WHISTLE__ERROR_CODE__ERR_TOO_LATE;
  case WH_ETOOFAR: return WHISTLE__ERROR_CODE__ERR_TOO_FAR;
  case WH_EREASON: return WHISTLE__ERROR_CODE__ERR_BAD_REASON;
  case WH_ESTALE: return WHISTLE__ERROR_CODE__ERR_STALE;
  case WH_ETICKET: return WHISTLE__ERROR_CODE__ERR_UNKNOWN_TICKET;
  default: return WHISTLE__ERROR_CODE__ERR_INTERNAL;
  }
}
