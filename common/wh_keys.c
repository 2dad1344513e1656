/* wh_keys - key files, the keyring, and a ZAP handler on the service's loop.
 *
 * ZAP requests arrive on a ROUTER bound at inproc://zeromq.zap.01 in the
 * service's own context; libzmq holds each handshake until its answer comes,
 * without blocking anything else, so answering from the loop costs a
 * handshake at most one batch of waiting. */
#include "wh_keys.h"
#include "wh_bus.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_Z85_LEN 40

typedef struct {
  char name[WH_KEY_NAME_MAX + 1];
  unsigned char key[32];
} s_entry_t;

struct wh_keys_s {
  char *dir;
  char self[WH_KEY_NAME_MAX + 1];
  char secret[S_Z85_LEN + 1], public_[S_Z85_LEN + 1];
  s_entry_t *entries;
  size_t n;
};

/* Reads the one Z85 key of path into z85 (41 bytes). Returns 0 or WH_EIO. */
static int s_read_key(const char *path, char *z85, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return WH_EIO;
  }
  char line[128] = "";
  int ok = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  line[strcspn(line, "\r\n")] = '\0';
  unsigned char bin[32];
  if (!ok || strlen(line) != S_Z85_LEN || !zmq_z85_decode(bin, line)) {
    snprintf(err, errlen, "%s:1: not a CURVE key (40 characters of Z85)", path);
    return WH_EIO;
  }
  memcpy(z85, line, S_Z85_LEN + 1);
  return 0;
}

/* Reads every NAME.pub of dir into a fresh array. */
static int s_read_dir(const char *dir, s_entry_t **out, size_t *nout, char *err, size_t errlen) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    return WH_EIO;
  }
  s_entry_t *e = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while (!rc && (de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len < 5 || strcmp(de->d_name + len - 4, ".pub")) continue;
    char name[WH_KEY_NAME_MAX + 1];
    if (len - 4 > WH_KEY_NAME_MAX) continue;
    memcpy(name, de->d_name, len - 4);
    name[len - 4] = '\0';
    if (wh_code_check(name, WH_KEY_NAME_MAX)) continue;
    char path[4096], z85[S_Z85_LEN + 1];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if ((rc = s_read_key(path, z85, err, errlen))) break;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      s_entry_t *grown = realloc(e, cap * sizeof *e);
      if (!grown) {
        rc = WH_ENOMEM;
        break;
      }
      e = grown;
    }
    memcpy(e[n].name, name, len - 3);
    zmq_z85_decode(e[n].key, z85);
    n++;
  }
  closedir(d);
  if (rc) {
    free(e);
    return rc;
  }
  *out = e;
  *nout = n;
  return 0;
}

wh_keys_t *wh_keys_load(const char *dir, const char *self, char *err, size_t errlen) {
  wh_keys_t *k = calloc(1, sizeof *k);
  if (!k || !(k->dir = strdup(dir))) {
    free(k);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  snprintf(k->self, sizeof k->self, "%s", self);
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.key", dir, self);
  if (s_read_key(path, k->secret, err, errlen) || zmq_curve_public(k->public_, k->secret) ||
      s_read_dir(dir, &k->entries, &k->n, err, errlen)) {
    wh_keys_destroy(&k);
    return NULL;
  }
  return k;
}

void wh_keys_destroy(wh_keys_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_keys_t *k = *self_p;
  *self_p = NULL;
  free(k->entries);
  free(k->dir);
  free(k);
}

int wh_keys_reload(wh_keys_t *k, char *err, size_t errlen) {
  s_entry_t *e;
  size_t n;
  if (s_read_dir(k->dir, &e, &n, err, errlen)) return WH_ECONFIG;
  free(k->entries);
  k->entries = e;
  k->n = n;
  return 0;
}

const char *wh_keys_name(const wh_keys_t *k, const unsigned char *key) {
  for (size_t i = 0; i < k->n; i++)
    if (!memcmp(k->entries[i].key, key, 32)) return k->entries[i].name;
  return NULL;
}

/* Where ZAP judges this service's handshakes: one domain for every socket. */
static const char s_domain[] = "whistle";

int wh_keys_server(const wh_keys_t *k, void *sock) {
  int one = 1;
  if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
      zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret, S_Z85_LEN) ||
      zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, s_domain, sizeof s_domain - 1))
    return WH_EZMQ;
  return 0;
}

static int s_client(void *sock, const char *pub, const char *secret, const char *server) {
  if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, S_Z85_LEN) ||
      zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, S_Z85_LEN) ||
      zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, S_Z85_LEN))
    return WH_EZMQ;
  return 0;
}

int wh_keys_client(const wh_keys_t *k, void *sock, const char *server) {
  for (size_t i = 0; i < k->n; i++) {
    if (strcmp(k->entries[i].name, server)) continue;
    char z85[S_Z85_LEN + 1];
    zmq_z85_encode(z85, k->entries[i].key, 32);
    return s_client(sock, k->public_, k->secret, z85);
  }
  return WH_ENOTFOUND;
}

int wh_keys_client_files(void *sock, const char *secret_path, const char *server_pub, char *err,
                         size_t errlen) {
  char secret[S_Z85_LEN + 1], pub[S_Z85_LEN + 1], server[S_Z85_LEN + 1];
  if (s_read_key(secret_path, secret, err, errlen) || s_read_key(server_pub, server, err, errlen))
    return WH_EIO;
  zmq_curve_public(pub, secret);
  if (s_client(sock, pub, secret, server)) {
    snprintf(err, errlen, "CURVE options refused: %s", zmq_strerror(errno));
    return WH_EIO;
  }
  return 0;
}

/* Writes text to path, created new with mode. */
static int s_write_new(const char *path, const char *text, mode_t mode, char *err, size_t errlen) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return errno == EEXIST ? WH_EINVAL : WH_EIO;
  }
  size_t len = strlen(text);
  int ok = write(fd, text, len) == (ssize_t)len && fchmod(fd, mode) == 0;
  ok &= close(fd) == 0;
  if (!ok) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    unlink(path);
    return WH_EIO;
  }
  return 0;
}

int wh_keygen(const char *dir, const char *name, char *err, size_t errlen) {
  if (wh_code_check(name, WH_KEY_NAME_MAX)) {
    snprintf(err, errlen, "%s: a key's name is a party or service code: 1-%d characters of"
             " [A-Za-z0-9_.:-]", name, WH_KEY_NAME_MAX);
    return WH_EFIELD;
  }
  char pub[S_Z85_LEN + 2], secret[S_Z85_LEN + 2], kpath[4096], ppath[4096];
  if (zmq_curve_keypair(pub, secret)) {
    snprintf(err, errlen, "no CURVE in this libzmq: %s", zmq_strerror(errno));
    return WH_EZMQ;
  }
  snprintf(kpath, sizeof kpath, "%s/%s.key", dir, name);
  snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name);
  if (access(kpath, F_OK) == 0 || access(ppath, F_OK) == 0) {
    snprintf(err, errlen, "%s: a key pair of that name is there already", kpath);
    return WH_EINVAL;
  }
  strcat(pub, "\n");
  strcat(secret, "\n");
  /* The secret first: a public key with no secret beside it would let a
   * keyring accept a key that nobody holds, which is harmless; the other
   * way round a secret could be left without its public half. */
  int rc = s_write_new(kpath, secret, 0600, err, errlen);
  if (!rc && (rc = s_write_new(ppath, pub, 0644, err, errlen))) unlink(kpath);
  return rc;
}

const char *wh_peer(zmq_msg_t *msg) { return zmq_msg_gets(msg, "User-Id"); }

/* ---- ZAP ---------------------------------------------------------------- */

struct wh_zap_s {
  wh_bus_t *bus;
  const wh_keys_t *keys;
};

/* The frames of a ZAP request on a ROUTER: the requester's routing id, the
 * empty delimiter, then version, request id, domain, address, identity,
 * mechanism and the mechanism's credentials (for CURVE, the client's key). */
enum { Z_ROUTE, Z_EMPTY, Z_VERSION, Z_REQUEST, Z_DOMAIN, Z_ADDRESS, Z_IDENTITY, Z_MECH, Z_CRED,
       Z_FRAMES };

static void s_zap_answer(void *sock, zmq_msg_t *route, zmq_msg_t *request, const char *status,
                         const char *text, const char *user) {
  zmq_msg_send(route, sock, ZMQ_SNDMORE);
  zmq_send(sock, "", 0, ZMQ_SNDMORE);
  zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
  zmq_msg_send(request, sock, ZMQ_SNDMORE);
  zmq_send(sock, status, 3, ZMQ_SNDMORE);
  zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
  zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
  zmq_send(sock, "", 0, 0); /* no metadata */
}

static void s_zap_on_readable(wh_bus_t *bus, void *arg) {
  wh_zap_t *z = arg;
  void *sock = wh_bus_socket(bus);
  /* A flood of connections is judged a round at a time (wh_bus). */
  for (int round = 0; round < WH_BUS_ROUND; round++) {
    zmq_msg_t f[Z_FRAMES];
    int n = 0, more = 1;
    while (more) {
      zmq_msg_t part;
      zmq_msg_init(&part);
      if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        break;
      }
      more = zmq_msg_more(&part);
      if (n < Z_FRAMES) {
        zmq_msg_init(&f[n]);
        zmq_msg_move(&f[n++], &part);
      }
      zmq_msg_close(&part);
    }
    if (n == 0) return;
    if (n == Z_FRAMES) {
      const char *user = NULL;
      int curve = zmq_msg_size(&f[Z_MECH]) == 5 && !memcmp(zmq_msg_data(&f[Z_MECH]), "CURVE", 5);
      if (curve && zmq_msg_size(&f[Z_CRED]) == 32)
        user = wh_keys_name(z->keys, zmq_msg_data(&f[Z_CRED]));
      if (user) {
        s_zap_answer(sock, &f[Z_ROUTE], &f[Z_REQUEST], "200", "OK", user);
      } else {
        char z85[S_Z85_LEN + 1] = "";
        if (curve && zmq_msg_size(&f[Z_CRED]) == 32) zmq_z85_encode(z85, zmq_msg_data(&f[Z_CRED]), 32);
        wh_warn("refused a connection from %.*s: %s%s", (int)zmq_msg_size(&f[Z_ADDRESS]),
                (const char *)zmq_msg_data(&f[Z_ADDRESS]),
                curve ? "a key that is not in the keyring: " : "no CURVE key", z85);
        s_zap_answer(sock, &f[Z_ROUTE], &f[Z_REQUEST], "400", "unknown key", "");
      }
    } else {
      wh_warn("a ZAP request of %d frames ignored", n);
    }
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
  }
}

wh_zap_t *wh_zap_new(uv_loop_t *loop, void *zctx, const wh_keys_t *keys) {
  wh_zap_t *z = calloc(1, sizeof *z);
  if (!z) return NULL;
  z->keys = keys;
  z->bus = wh_bus_new(loop, zctx, ZMQ_ROUTER, "inproc://zeromq.zap.01", 1, NULL, NULL,
                      s_zap_on_readable, z);
  if (!z->bus) {
    free(z);
    return NULL;
  }
  return z;
}

void wh_zap_destroy(wh_zap_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_zap_t *z = *self_p;
  *self_p = NULL;
  wh_bus_destroy(&z->bus);
  free(z);
}
