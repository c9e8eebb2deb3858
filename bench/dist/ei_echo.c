/*
 * ei_echo: the classic blocking C node of erl_interface's user guide,
 * written for bench/dist as the baseline. One thread, one connection at a
 * time: ei_xlisten + ei_publish, ei_accept, then an ei_xreceive_msg loop
 * that answers each message with ei_send before reading the next.
 *
 *   ei_echo ALIVE@HOST COOKIE
 *
 * Prints "ei_echo NAME ready on port P" when it serves; SIGTERM ends it
 * (default action). Registered names it answers to (any other name is
 * treated as echo):
 *
 *   echo  {Pid, T} -> Pid ! {echo, T}; {cast, T} counted;
 *         {report, Pid} -> Pid ! {count, N} (and resets);
 *         gen_server:call(echo, Req) -> Req
 *   hash  gen_server:call(hash, Bin) -> MD5 of Bin (16-byte binary)
 *
 * gen_server calls from OTP 24+ carry the tag [alias | Ref] and expect
 * the reply at the alias. ei 5.3 has no alias send, so the reply {Tag,
 * Reply} goes to the caller's pid with ei_send: gen:call's receive
 * matches {[alias | Ref], Reply} whatever way the message came in, so the
 * call returns normally. (The one difference: a reply that arrives after
 * the caller timed out lands in its mailbox instead of being dropped with
 * the alias.)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ei.h>
#include <openssl/evp.h>

static unsigned long cast_count;

/* Span [start, end) of the next term at *index, which is moved past it. */
static int span(const char *buf, int *index, int *start, int *end)
{
    *start = *index;
    if (ei_skip_term(buf, index) < 0)
        return -1;
    *end = *index;
    return 0;
}

static int send_x(int fd, erlang_pid *to, ei_x_buff *x)
{
    if (ei_send(fd, to, x->buff, x->index) < 0) {
        fprintf(stderr, "ei_echo: ei_send failed\n");
        return -1;
    }
    return 0;
}

/* {'$gen_call', {Pid, Tag}, Req} at index (after the 3-tuple header). */
static int gen_call(int fd, const char *to_name, const char *buf, int index, ei_x_buff *out)
{
    char atom[MAXATOMLEN_UTF8];
    int arity, ts, te, rs, re;
    erlang_pid from;
    if (ei_decode_atom(buf, &index, atom) < 0 || strcmp(atom, "$gen_call") != 0)
        return 0;
    if (ei_decode_tuple_header(buf, &index, &arity) < 0 || arity != 2)
        return 0;
    if (ei_decode_pid(buf, &index, &from) < 0 || span(buf, &index, &ts, &te) < 0 ||
        span(buf, &index, &rs, &re) < 0)
        return 0;
    out->index = 0;
    ei_x_encode_version(out);
    ei_x_encode_tuple_header(out, 2);
    ei_x_append_buf(out, buf + ts, te - ts);
    if (strcmp(to_name, "hash") == 0) {
        int type, size, bi = rs;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (ei_get_type(buf, &bi, &type, &size) < 0 || type != ERL_BINARY_EXT)
            return 0;
        /* BINARY_EXT: tag byte, 4-byte length, then the bytes. */
        if (!EVP_Digest(buf + rs + 5, (size_t)size, md, &mdlen, EVP_md5(), NULL))
            return 0;
        ei_x_encode_binary(out, md, (int)mdlen);
    } else {
        ei_x_append_buf(out, buf + rs, re - rs);
    }
    return send_x(fd, &from, out);
}

static int handle(int fd, const erlang_msg *msg, const char *buf, ei_x_buff *out)
{
    int index = 0, version, arity, type, size;
    if (ei_decode_version(buf, &index, &version) < 0 ||
        ei_decode_tuple_header(buf, &index, &arity) < 0)
        return 0; /* not ours: ignored */
    if (arity == 3)
        return gen_call(fd, msg->msgtype == ERL_REG_SEND ? msg->toname : "echo", buf, index, out);
    if (arity != 2 || ei_get_type(buf, &index, &type, &size) < 0)
        return 0;
    if (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
        type == ERL_SMALL_ATOM_UTF8_EXT) {
        char atom[MAXATOMLEN_UTF8];
        erlang_pid to;
        if (ei_decode_atom(buf, &index, atom) < 0)
            return 0;
        if (strcmp(atom, "cast") == 0) {
            cast_count++;
        } else if (strcmp(atom, "report") == 0 && ei_decode_pid(buf, &index, &to) == 0) {
            out->index = 0;
            ei_x_encode_version(out);
            ei_x_encode_tuple_header(out, 2);
            ei_x_encode_atom(out, "count");
            ei_x_encode_ulong(out, cast_count);
            cast_count = 0;
            return send_x(fd, &to, out);
        }
        return 0;
    }
    erlang_pid to;
    int ts, te;
    if (ei_decode_pid(buf, &index, &to) < 0 || span(buf, &index, &ts, &te) < 0)
        return 0;
    out->index = 0;
    ei_x_encode_version(out);
    ei_x_encode_tuple_header(out, 2);
    ei_x_encode_atom(out, "echo");
    ei_x_append_buf(out, buf + ts, te - ts);
    return send_x(fd, &to, out);
}

/* Serve one connection until it closes. */
static void serve(int fd)
{
    ei_x_buff in, out;
    erlang_msg msg;
    ei_x_new(&in);
    ei_x_new(&out);
    for (;;) {
        int got = ei_xreceive_msg(fd, &msg, &in);
        if (got == ERL_TICK)
            continue; /* ei answered the tick */
        if (got == ERL_ERROR)
            break;
        if (msg.msgtype == ERL_SEND || msg.msgtype == ERL_REG_SEND) {
            if (handle(fd, &msg, in.buff, &out) < 0)
                break;
        }
        /* links, monitors and the like: ignored */
    }
    ei_x_free(&in);
    ei_x_free(&out);
}

int main(int argc, char **argv)
{
    if (argc != 3 || !strchr(argv[1], '@')) {
        fprintf(stderr, "usage: ei_echo ALIVE@HOST COOKIE\n");
        return 2;
    }
    char alive[256], host[256];
    const char *at = strchr(argv[1], '@');
    snprintf(alive, sizeof alive, "%.*s", (int)(at - argv[1]), argv[1]);
    snprintf(host, sizeof host, "%s", at + 1);

    ei_init();
    ei_cnode ec;
    struct in_addr addr;
    inet_aton("127.0.0.1", &addr);
    if (ei_connect_xinit(&ec, host, alive, argv[1], &addr, argv[2], 0) < 0) {
        fprintf(stderr, "ei_echo: ei_connect_xinit failed\n");
        return 1;
    }
    int port = 0;
    int lfd = ei_xlisten(&ec, &addr, &port, 5);
    if (lfd < 0) {
        fprintf(stderr, "ei_echo: ei_xlisten failed\n");
        return 1;
    }
    /* EPMD at 127.0.0.1:$ERL_EPMD_PORT; the socket stays open for the
     * registration's life. */
    if (ei_publish(&ec, port) < 0) {
        fprintf(stderr, "ei_echo: ei_publish failed (epmd)\n");
        return 1;
    }
    printf("ei_echo %s ready on port %d\n", argv[1], port);
    fflush(stdout);
    for (int failures = 0; failures < 100;) {
        ErlConnect conn;
        int fd = ei_accept(&ec, lfd, &conn);
        if (fd < 0) {
            fprintf(stderr, "ei_echo: ei_accept failed\n");
            failures++;
            continue;
        }
        failures = 0;
        /* As Erlang's own distribution does: no Nagle delay on replies. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve(fd);
        close(fd);
    }
    return 1;
}
