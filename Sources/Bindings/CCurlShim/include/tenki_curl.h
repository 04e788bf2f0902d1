// curl_easy_setopt and curl_easy_getinfo are variadic: Swift cannot call them, so these typed
// wrappers do.
#ifndef TENKI_CURL_H
#define TENKI_CURL_H
#include <curl/curl.h>

typedef size_t (*tenki_curl_write_callback)(char *data, size_t size, size_t nmemb, void *userdata);

CURLcode tenki_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode tenki_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode tenki_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode tenki_curl_setopt_write_callback(CURL *handle, CURLoption option, tenki_curl_write_callback callback);
CURLcode tenki_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode tenki_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
#endif
