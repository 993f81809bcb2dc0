// rabbitmq-c 0.11 (Debian's librabbitmq-dev). Variadic functions and OpenSSL macros cannot be called
// from Swift, so they are wrapped here in fixed-argument inline functions prefixed `crabbitmq_`.
#ifndef CRABBITMQ_SHIM_H
#define CRABBITMQ_SHIM_H

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/ssl.h>

/// amqp_login with PLAIN authentication.
static inline amqp_rpc_reply_t crabbitmq_login_plain(amqp_connection_state_t state, const char *vhost,
                                                     int channel_max, int frame_max, int heartbeat,
                                                     const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

/// Trusts the system's CAs (OpenSSL's default paths, or SSL_CERT_FILE / SSL_CERT_DIR): rabbitmq-c 0.11
/// trusts nothing until a CA file is set. Returns 1 on success.
static inline int crabbitmq_ssl_trust_system_cas(amqp_socket_t *socket) {
    SSL_CTX *context = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
    if (context == NULL) return 0;
    return SSL_CTX_set_default_verify_paths(context);
}

/// Requires TLS 1.2 or later without touching the trusted CAs. Returns 1 on success.
static inline int crabbitmq_ssl_require_tls12(amqp_socket_t *socket) {
    SSL_CTX *context = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
    if (context == NULL) return 0;
    return (int)SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
}

#endif
