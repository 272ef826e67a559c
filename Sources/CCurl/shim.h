#ifndef S3CACHE_CCURL_SHIM_H
#define S3CACHE_CCURL_SHIM_H
#include <curl/curl.h>

/*
 * curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call.
 * One wrapper per argument type that libcurl documents for an option; the Swift
 * side picks the one matching the option's CURLOPTTYPE.
 */

static inline CURLcode s3cache_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode s3cache_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/* Strings (copied by libcurl), data pointers handed back to callbacks, buffers, lists. */
static inline CURLcode s3cache_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION share this signature. */
static inline CURLcode s3cache_curl_setopt_write_function(CURL *handle, CURLoption option, curl_write_callback function) {
    return curl_easy_setopt(handle, option, function);
}

static inline CURLcode s3cache_curl_setopt_read_function(CURL *handle, CURLoption option, curl_read_callback function) {
    return curl_easy_setopt(handle, option, function);
}

static inline CURLcode s3cache_curl_setopt_seek_function(CURL *handle, CURLoption option, curl_seek_callback function) {
    return curl_easy_setopt(handle, option, function);
}

static inline CURLcode s3cache_curl_setopt_xferinfo_function(CURL *handle, CURLoption option, curl_xferinfo_callback function) {
    return curl_easy_setopt(handle, option, function);
}

static inline CURLcode s3cache_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode s3cache_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

/* Macros Swift may import with the wrong integer type. */
static const long s3cache_curl_global_default = CURL_GLOBAL_DEFAULT;
static const size_t s3cache_curl_readfunc_abort = CURL_READFUNC_ABORT;
static const size_t s3cache_curl_error_size = CURL_ERROR_SIZE;
#endif
