/*
 * A private epmd on 127.0.0.1 for a test program (header only, like
 * probe.h): started at a free port, stopped by pid. If the program dies
 * (a sanitizer's abort), epmd goes with it.
 */
#ifndef CACTOR_TEST_EPMD_H
#define CACTOR_TEST_EPMD_H

#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct test_epmd {
    pid_t pid;
    uint16_t port;
} test_epmd;

/* A blocking TCP connection to 127.0.0.1:port (5 s receive timeout), or -1. */
static inline int test_tcp_dial(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Must be called from the thread that stops it: PR_SET_PDEATHSIG follows
 * the thread that forked. 0, or -1 if no port worked. */
static inline int test_epmd_start(test_epmd *e)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        uint16_t port = (uint16_t)(20000 + (getpid() * 7 + attempt * 977) % 40000);
        char ps[16];
        snprintf(ps, sizeof ps, "%u", port);
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            setenv("ERL_EPMD_ADDRESS", "127.0.0.1", 1);
            /* it never holds the program's output pipe open for ctest */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
                _exit(127);
            execlp("epmd", "epmd", "-port", ps, "-address", "127.0.0.1", (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 50; i++) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                break; /* exited: port taken, try another */
            int fd = test_tcp_dial(port);
            if (fd >= 0) {
                close(fd);
                e->pid = pid;
                e->port = port;
                return 0;
            }
            usleep(100 * 1000);
        }
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    return -1;
}

static inline void test_epmd_stop(test_epmd *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
}

#endif
