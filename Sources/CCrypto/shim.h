#ifndef S3CACHE_CCRYPTO_SHIM_H
#define S3CACHE_CCRYPTO_SHIM_H
/*
 * OpenSSL libcrypto, for SigV4's SHA-256 and HMAC-SHA256 only. Swift calls the
 * EVP one-shot functions directly (none is a macro or variadic); nothing to wrap.
 */
#include <openssl/evp.h>
#endif
