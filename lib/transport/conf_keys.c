/* lib/transport/conf_keys.c - the transports' configuration keys (conf_keys.h). */
#include <stdint.h>

#include "transport/conf_keys.h"

#define B(k) [(k) - KC_KEY_BASE(KC_TABLE_TRANSPORT)]
enum { SC = KC_SCOPE_INSTANCE };

static const char *const v_client_auth[] = { "none", "requested", "required", NULL };
static const char *const v_protocols[] = { "TLSv1.2,TLSv1.3", "TLSv1.3", "TLSv1.2", NULL };
static const kc_sym s_protocols[] = { { "TLSv1.3,TLSv1.2", KC_TLS_12_13 }, { NULL, 0 } };
static const char *const v_endpoint[] = { "https", "none", NULL };
static const kc_sym s_endpoint[] = { { "", KC_ENDPOINT_NONE }, { NULL, 0 } };

static const kc_def defs[] = {
    B(KC_SSL_CERTIFICATE_LOCATION) = KC_STR("ssl.certificate.location", SC,
                                            "TLS: this end's certificate (PEM, the chain after it)"),
    B(KC_SSL_KEY_LOCATION) = KC_STR("ssl.key.location", SC, "TLS: the private key of ssl.certificate.location (PEM)"),
    B(KC_SSL_KEY_PASSWORD) = KC_STR("ssl.key.password", SC, "TLS: the passphrase of an encrypted ssl.key.location"),
    B(KC_SSL_CA_LOCATION) = KC_STR("ssl.ca.location", SC,
                                   "TLS: CA certificates (PEM file) that peers' certificates must chain to"),
    B(KC_SSL_CLIENT_AUTH) = KC_ENUM("ssl.client.auth", SC, KC_CLIENT_AUTH_NONE, v_client_auth,
                                    "TLS listeners: ask clients for a certificate (requested) or insist (required)"),
    B(KC_SSL_ENABLED_PROTOCOLS) = { .name = "ssl.enabled.protocols", .type = KC_TYPE_ENUM, .scope = SC,
                                    .def = KC_TLS_12_13, .values = v_protocols, .syms = s_protocols,
                                    .doc = "TLS versions allowed" },
    B(KC_SSL_CIPHER_SUITES) = KC_STR("ssl.cipher.suites", SC,
                                     "TLS 1.2 cipher list in OpenSSL's syntax (empty: OpenSSL's defaults)"),
    B(KC_SSL_ENDPOINT_IDENTIFICATION) = { .name = "ssl.endpoint.identification.algorithm", .type = KC_TYPE_ENUM,
                                          .scope = SC, .def = KC_ENDPOINT_HTTPS, .values = v_endpoint,
                                          .syms = s_endpoint,
                                          .doc = "TLS connections: check the server's name or address "
                                                 "against its certificate (https) or not (none)" },
    B(KC_SSL_PSK_IDENTITY) = KC_STR("ssl.psk.identity", SC,
                                    "TLS with a pre-shared key instead of certificates: the key's name"),
    B(KC_SSL_PSK_KEY) = KC_STR("ssl.psk.key", SC, "TLS pre-shared key: 16 to 64 bytes in hexadecimal"),
};

_Static_assert(sizeof defs / sizeof defs[0] == KC_TRANSPORT__END - KC_KEY_BASE(KC_TABLE_TRANSPORT),
               "a key without an entry");

const kc_table klog__transport_conf_table = { "transport", KC_TABLE_TRANSPORT, defs,
                                              sizeof defs / sizeof defs[0] };
