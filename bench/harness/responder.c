/*
 * The transport's ceiling for bench/run: the least a libfcgi responder can do per request.
 *
 *     cc -O2 -pthread -o responder responder.c -lfcgi
 *     ./responder SOCKET THREADS BODY_FILE
 *
 * THREADS threads each accept and answer requests on the Unix socket SOCKET, as libfcgi's own
 * threaded example does: a kept connection stays with the thread that accepted it. A request
 * whose REQUEST_URI ends in "/health" gets the worker's health answer; any other gets the bytes
 * of BODY_FILE, read once at startup, with the header lines a 1 KiB cache hit of s3cache
 * carries (same names, values of the same length), so that both send the same bytes to nginx.
 * No routing, no cache, no log: what remains is libfcgi reading the request and writing the
 * response, which is what bench/run compares the worker's /health and 1 KiB hit against.
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int listen_fd;
static char *body_head;
static size_t body_head_length;
static char *body;
static size_t body_length;

static const char health_answer[] =
    "Status: 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "Cache-Control: no-store\r\n"
    "Content-Length: 15\r\n"
    "\r\n"
    "{\"status\":\"ok\"}";

static int ends_with(const char *text, const char *suffix) {
    size_t text_length = strlen(text), suffix_length = strlen(suffix);
    return text_length >= suffix_length && strcmp(text + text_length - suffix_length, suffix) == 0;
}

static void *serve(void *unused) {
    (void)unused;
    FCGX_Request request;
    if (FCGX_InitRequest(&request, listen_fd, 0) != 0) {
        fprintf(stderr, "responder: FCGX_InitRequest failed\n");
        exit(1);
    }
    while (FCGX_Accept_r(&request) >= 0) {
        const char *uri = FCGX_GetParam("REQUEST_URI", request.envp);
        if (uri != NULL && ends_with(uri, "/health")) {
            FCGX_PutStr(health_answer, (int)sizeof(health_answer) - 1, request.out);
        } else {
            FCGX_PutStr(body_head, (int)body_head_length, request.out);
            FCGX_PutStr(body, (int)body_length, request.out);
        }
        FCGX_Finish_r(&request);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s SOCKET THREADS BODY_FILE\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[2]);
    FILE *file = fopen(argv[3], "rb");
    if (threads < 1 || file == NULL) {
        fprintf(stderr, "responder: bad thread count or unreadable %s\n", argv[3]);
        return 2;
    }
    fseek(file, 0, SEEK_END);
    body_length = (size_t)ftell(file);
    rewind(file);
    body = malloc(body_length + 1);
    if (body == NULL || fread(body, 1, body_length, file) != body_length) {
        fprintf(stderr, "responder: cannot read %s\n", argv[3]);
        return 2;
    }
    fclose(file);
    body_head = malloc(1024);
    body_head_length = (size_t)snprintf(body_head, 1024,
        "Status: 200 OK\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Content-Length: %zu\r\n"
        "ETag: \"0123456789abcdef0123456789abcdef\"\r\n"
        "Last-Modified: Wed, 02 Dec 2026 03:00:00 GMT\r\n"
        "Accept-Ranges: bytes\r\n"
        "X-Cache: HIT\r\n"
        "Cache-Status: s3cache; hit; ttl=86399\r\n"
        "\r\n", body_length);

    if (FCGX_Init() != 0) {
        fprintf(stderr, "responder: FCGX_Init failed\n");
        return 1;
    }
    listen_fd = FCGX_OpenSocket(argv[1], 4096);
    if (listen_fd < 0) {
        fprintf(stderr, "responder: cannot listen on %s\n", argv[1]);
        return 1;
    }
    chmod(argv[1], 0666);   /* nginx's workers run as another user */
    pthread_t thread;
    for (int index = 1; index < threads; index++) {
        if (pthread_create(&thread, NULL, serve, NULL) != 0) {
            fprintf(stderr, "responder: pthread_create failed\n");
            return 1;
        }
    }
    serve(NULL);
    return 0;
}
