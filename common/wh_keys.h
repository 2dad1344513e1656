/* wh_keys - who is speaking: CURVE key pairs, the keyring and ZAP.
 *
 * Every service and every party of the org chart has a CURVE key pair:
 * NAME.key holds the secret key (mode 0600), NAME.pub the public one, each
 * one line of Z85 text. A service reads its own secret key and every public
 * key of its key directory; a public key's file name is the name the key
 * stands for. Every socket of a service is a CURVE server or client, and
 * the service answers ZeroMQ's authentication protocol (ZAP) itself, on its
 * own loop: a connecting key in the keyring is accepted and its name becomes
 * the connection's User-Id, which every message that comes over it carries
 * (wh_peer); any other key is refused at the handshake. So a receiver learns
 * who sent a message from the key, never from what the message says.
 *
 * The keyring is read again on SIGHUP (wh_keys_reload): a party added to the
 * directory can connect without a restart, and a key removed is refused on
 * its next connection. */
#ifndef WH_KEYS_H
#define WH_KEYS_H

#include <stddef.h>
#include <uv.h>
#include <zmq.h>

typedef struct wh_keys_s wh_keys_t;

/* The longest name a key file may stand for (a party or service code). */
#define WH_KEY_NAME_MAX 64

/* Loads self's key pair (dir/self.key) and every public key in dir. On error
 * returns NULL and writes why into err. Caller owns the keyring. */
wh_keys_t *wh_keys_load(const char *dir, const char *self, char *err, size_t errlen);
void wh_keys_destroy(wh_keys_t **self_p);
/* Reads the directory's public keys again; on error keeps the keyring as it
 * was, writes why into err and returns WH_ECONFIG. */
int wh_keys_reload(wh_keys_t *keys, char *err, size_t errlen);
/* The name whose public key is key (32 bytes), or NULL. Borrowed. */
const char *wh_keys_name(const wh_keys_t *keys, const unsigned char *key);
/* Makes sock a CURVE server with self's key, its handshakes judged by ZAP.
 * Returns 0 or WH_EZMQ. */
int wh_keys_server(const wh_keys_t *keys, void *sock);
/* Makes sock a CURVE client with self's key pair, of server, whose public
 * key must be in the keyring. Returns 0, WH_ENOTFOUND or WH_EZMQ. */
int wh_keys_client(const wh_keys_t *keys, void *sock, const char *server);
/* The same from key files, for a client without a keyring (whistlectl, the
 * load generator): secret_path holds the client's secret key, server_pub
 * the server's public key. Returns 0, or WH_EIO with why in err. */
int wh_keys_client_files(void *sock, const char *secret_path, const char *server_pub, char *err,
                         size_t errlen);

/* Writes a new key pair as dir/name.key (0600) and dir/name.pub. Refuses
 * to replace a pair that is there (WH_EINVAL) and a name that is not a code
 * (WH_EFIELD). Returns 0, or an error with why in err. */
int wh_keygen(const char *dir, const char *name, char *err, size_t errlen);

/* The authenticated name of the peer msg came from (its User-Id), or NULL
 * when the connection has none (a plain socket). Borrowed from msg. */
const char *wh_peer(zmq_msg_t *msg);

typedef struct wh_zap_s wh_zap_t;

/* Answers ZAP requests of every socket of zctx on loop, from keys
 * (borrowed; it must outlive the handler). Bind it before any CURVE server
 * socket. Returns NULL on failure. */
wh_zap_t *wh_zap_new(uv_loop_t *loop, void *zctx, const wh_keys_t *keys);
void wh_zap_destroy(wh_zap_t **self_p);

#endif
