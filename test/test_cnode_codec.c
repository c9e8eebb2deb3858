/*
 * Unit tests of the I/O-free distribution codecs (cnode/dist.h): EPMD,
 * handshake, framing, control messages. Run it under ASan too: the
 * truncation and garbage tests are there to catch overreads.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "bytes.h"
#include "dist.h"
#include "probe.h"

/*
 * Frames built by real Erlang (OTP 25), pasted. Pids and refs were made
 * with binary_to_term of NEW_PID_EXT / NEWER_REFERENCE_EXT bytes so that
 * they carry real node names and creations without starting distribution,
 * then every frame is <<Len:32, $p, (term_to_binary(Ctrl))/binary,
 * (term_to_binary(Msg))/binary>>, printed from `erl -noshell`:
 *
 *   From  = pid('peer@host.example', 87, 0, 1700000001)
 *   To    = pid('cactor@host.example', 12, 3, 1700000002)
 *   Big   = pid('cactor@host.example', 16#FFFFFFF0, 16#ABCDEF01, 1700000002)
 *   GL    = pid('peer@host.example', 64, 0, 1700000001)
 *   Ref3  = ref('peer@host.example', 1700000001, [1, 2, 3])
 *   Ref5  = ref('cactor@host.example', 1700000002, [11, 22, 33, 44, 55])
 *   Msg   = {hello, <<"world">>, 42, [1.5, "str"], #{k => v}}
 *   Token = {0, self_label, 7, From, 3}
 *
 *   VEC_SEND_SENDER     {22, From, To} ++ Msg
 *   VEC_SEND_SENDER_TT  {23, From, To, Token} ++ Msg
 *   VEC_REG_SEND        {6, From, '', 'café_server'} ++ Msg (Latin-1 atoms)
 *   VEC_REG_SEND_UTF8   {6, From, '', 'café_世'} ++ Msg, minor_version 2
 *   VEC_SEND            {2, '', Big} ++ <<"bin">>
 *   VEC_LINK            {1, From, To}
 *   VEC_EXIT            {3, From, To, {shutdown, because}}
 *   VEC_EXIT2_TT        {18, From, To, Token, kill}
 *   VEC_PAYLOAD_EXIT2   {26, From, To} ++ {badarg, [{m, f, 1}]}
 *   VEC_MONITOR_NAME    {19, From, some_server, Ref3}
 *   VEC_DEMONITOR_PID   {20, From, To, Ref3}
 *   VEC_MONITOR_P_EXIT  {21, To, From, Ref3, noproc}
 *   VEC_SPAWN_REQUEST   {29, Ref3, From, GL, {mod, func, 2}, [link, monitor]}
 *                       ++ [1, "two"]
 *   VEC_SPAWN_REPLY     {31, Ref3, From, 3, To}
 *   VEC_UNLINK_ID       {35, 12345678901234, From, To}
 *   VEC_UNLINK_ID_ACK   {36, 18446744073709551615, To, From}
 *   VEC_ALIAS_SEND      {33, From, Ref5} ++ Msg
 *   VEC_UNLINK_OLD      {4, From, To}
 *   VEC_NODE_LINK       {5}
 *   VEC_UNKNOWN_OP      {99, foo, "bar"} ++ baz
 *   VEC_MSG, VEC_TOKEN  term_to_binary(Msg), term_to_binary(Token)
 *   VEC_MD5_DEADBEEF    erlang:md5(["secretcookie", integer_to_list(16#DEADBEEF)])
 *   VEC_MD5_ZERO        erlang:md5(["", "0"])
 */
static const unsigned char VEC_SEND_SENDER[135] = {
    0,   0,   0,   131, 112, 131, 104, 3,   97,  22,  88,  100, 0,   17,  112, 101, 101,
    114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,
    87,  0,   0,   0,   0,   101, 83,  241, 1,   88,  100, 0,   19,  99,  97,  99,  116,
    111, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,
    0,   12,  0,   0,   0,   3,   101, 83,  241, 2,   131, 104, 5,   100, 0,   5,   104,
    101, 108, 108, 111, 109, 0,   0,   0,   5,   119, 111, 114, 108, 100, 97,  42,  108,
    0,   0,   0,   2,   70,  63,  248, 0,   0,   0,   0,   0,   0,   107, 0,   3,   115,
    116, 114, 106, 116, 0,   0,   0,   1,   100, 0,   1,   107, 100, 0,   1,   118,
};
static const unsigned char VEC_SEND_SENDER_TT[189] = {
    0,   0,   0,   185, 112, 131, 104, 4,   97,  23,  88,  100, 0,   17,  112, 101, 101, 114, 64,
    104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   87,  0,   0,   0,
    0,   101, 83,  241, 1,   88,  100, 0,   19,  99,  97,  99,  116, 111, 114, 64,  104, 111, 115,
    116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   12,  0,   0,   0,   3,   101, 83,
    241, 2,   104, 5,   97,  0,   100, 0,   10,  115, 101, 108, 102, 95,  108, 97,  98,  101, 108,
    97,  7,   88,  100, 0,   17,  112, 101, 101, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,
    109, 112, 108, 101, 0,   0,   0,   87,  0,   0,   0,   0,   101, 83,  241, 1,   97,  3,   131,
    104, 5,   100, 0,   5,   104, 101, 108, 108, 111, 109, 0,   0,   0,   5,   119, 111, 114, 108,
    100, 97,  42,  108, 0,   0,   0,   2,   70,  63,  248, 0,   0,   0,   0,   0,   0,   107, 0,
    3,   115, 116, 114, 106, 116, 0,   0,   0,   1,   100, 0,   1,   107, 100, 0,   1,   118,
};
static const unsigned char VEC_REG_SEND[117] = {
    0,   0,   0,   113, 112, 131, 104, 4,   97,  6,   88,  100, 0,   17,  112, 101, 101,
    114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,
    87,  0,   0,   0,   0,   101, 83,  241, 1,   100, 0,   0,   100, 0,   11,  99,  97,
    102, 233, 95,  115, 101, 114, 118, 101, 114, 131, 104, 5,   100, 0,   5,   104, 101,
    108, 108, 111, 109, 0,   0,   0,   5,   119, 111, 114, 108, 100, 97,  42,  108, 0,
    0,   0,   2,   70,  63,  248, 0,   0,   0,   0,   0,   0,   107, 0,   3,   115, 116,
    114, 106, 116, 0,   0,   0,   1,   100, 0,   1,   107, 100, 0,   1,   118,
};
static const unsigned char VEC_REG_SEND_UTF8[109] = {
    0,   0,   0,   105, 112, 131, 104, 4,   97,  6,   88,  119, 17,  112, 101, 101, 114, 64,  104,
    111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   87,  0,   0,   0,   0,
    101, 83,  241, 1,   119, 0,   119, 9,   99,  97,  102, 195, 169, 95,  228, 184, 150, 131, 104,
    5,   119, 5,   104, 101, 108, 108, 111, 109, 0,   0,   0,   5,   119, 111, 114, 108, 100, 97,
    42,  108, 0,   0,   0,   2,   70,  63,  248, 0,   0,   0,   0,   0,   0,   107, 0,   3,   115,
    116, 114, 106, 116, 0,   0,   0,   1,   119, 1,   107, 119, 1,   118,
};
static const unsigned char VEC_SEND[57] = {
    0,   0,   0,   53,  112, 131, 104, 3,   97,  2,  100, 0,   0,  88,  100, 0,   19,  99,  97,
    99,  116, 111, 114, 64,  104, 111, 115, 116, 46, 101, 120, 97, 109, 112, 108, 101, 255, 255,
    255, 240, 171, 205, 239, 1,   101, 83,  241, 2,  131, 109, 0,  0,   0,   3,   98,  105, 110,
};
static const unsigned char VEC_LINK[78] = {
    0,   0,   0,   74,  112, 131, 104, 3,   97,  1,   88,  100, 0,   17,  112, 101,
    101, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,
    0,   0,   87,  0,   0,   0,   0,   101, 83,  241, 1,   88,  100, 0,   19,  99,
    97,  99,  116, 111, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112,
    108, 101, 0,   0,   0,   12,  0,   0,   0,   3,   101, 83,  241, 2,
};
static const unsigned char VEC_EXIT[101] = {
    0,   0,   0,   97,  112, 131, 104, 4,   97,  3,   88,  100, 0,   17,  112, 101, 101,
    114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,
    87,  0,   0,   0,   0,   101, 83,  241, 1,   88,  100, 0,   19,  99,  97,  99,  116,
    111, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,
    0,   12,  0,   0,   0,   3,   101, 83,  241, 2,   104, 2,   100, 0,   8,   115, 104,
    117, 116, 100, 111, 119, 110, 100, 0,   7,   98,  101, 99,  97,  117, 115, 101,
};
static const unsigned char VEC_EXIT2_TT[139] = {
    0,   0,   0,   135, 112, 131, 104, 5,   97,  18,  88,  100, 0,   17,  112, 101, 101, 114,
    64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   87,  0,
    0,   0,   0,   101, 83,  241, 1,   88,  100, 0,   19,  99,  97,  99,  116, 111, 114, 64,
    104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   12,  0,   0,
    0,   3,   101, 83,  241, 2,   104, 5,   97,  0,   100, 0,   10,  115, 101, 108, 102, 95,
    108, 97,  98,  101, 108, 97,  7,   88,  100, 0,   17,  112, 101, 101, 114, 64,  104, 111,
    115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   87,  0,   0,   0,   0,
    101, 83,  241, 1,   97,  3,   100, 0,   4,   107, 105, 108, 108,
};
static const unsigned char VEC_PAYLOAD_EXIT2[108] = {
    0,   0,   0,   104, 112, 131, 104, 3,   97,  26,  88,  100, 0,   17, 112, 101, 101, 114,
    64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,  0,   0,   87,  0,
    0,   0,   0,   101, 83,  241, 1,   88,  100, 0,   19,  99,  97,  99, 116, 111, 114, 64,
    104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,  0,   12,  0,   0,
    0,   3,   101, 83,  241, 2,   131, 104, 2,   100, 0,   6,   98,  97, 100, 97,  114, 103,
    108, 0,   0,   0,   1,   104, 3,   100, 0,   1,   109, 100, 0,   1,  102, 97,  1,   106,
};
static const unsigned char VEC_MONITOR_NAME[96] = {
    0,   0,   0,   92,  112, 131, 104, 4,   97,  19,  88,  100, 0,   17,  112, 101,
    101, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,
    0,   0,   87,  0,   0,   0,   0,   101, 83,  241, 1,   100, 0,   11,  115, 111,
    109, 101, 95,  115, 101, 114, 118, 101, 114, 90,  0,   3,   100, 0,   17,  112,
    101, 101, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101,
    101, 83,  241, 1,   0,   0,   0,   1,   0,   0,   0,   2,   0,   0,   0,   3,
};
static const unsigned char VEC_DEMONITOR_PID[117] = {
    0,   0,   0,   113, 112, 131, 104, 4,   97,  20,  88,  100, 0,   17,  112, 101, 101,
    114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,
    87,  0,   0,   0,   0,   101, 83,  241, 1,   88,  100, 0,   19,  99,  97,  99,  116,
    111, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,
    0,   12,  0,   0,   0,   3,   101, 83,  241, 2,   90,  0,   3,   100, 0,   17,  112,
    101, 101, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 101,
    83,  241, 1,   0,   0,   0,   1,   0,   0,   0,   2,   0,   0,   0,   3,
};
static const unsigned char VEC_MONITOR_P_EXIT[126] = {
    0,   0,   0,   122, 112, 131, 104, 5,   97,  21,  88,  100, 0,   19,  99,  97,  99,  116,
    111, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,
    12,  0,   0,   0,   3,   101, 83,  241, 2,   88,  100, 0,   17,  112, 101, 101, 114, 64,
    104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   87,  0,   0,
    0,   0,   101, 83,  241, 1,   90,  0,   3,   100, 0,   17,  112, 101, 101, 114, 64,  104,
    111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 101, 83,  241, 1,   0,   0,   0,
    1,   0,   0,   0,   2,   0,   0,   0,   3,   100, 0,   6,   110, 111, 112, 114, 111, 99,
};
static const unsigned char VEC_SPAWN_REQUEST[170] = {
    0,   0,   0,   166, 112, 131, 104, 6,   97,  29,  90,  0,   3,   100, 0,   17,  112, 101, 101,
    114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 101, 83,  241, 1,   0,
    0,   0,   1,   0,   0,   0,   2,   0,   0,   0,   3,   88,  100, 0,   17,  112, 101, 101, 114,
    64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   87,  0,   0,
    0,   0,   101, 83,  241, 1,   88,  100, 0,   17,  112, 101, 101, 114, 64,  104, 111, 115, 116,
    46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   64,  0,   0,   0,   0,   101, 83,  241,
    1,   104, 3,   100, 0,   3,   109, 111, 100, 100, 0,   4,   102, 117, 110, 99,  97,  2,   108,
    0,   0,   0,   2,   100, 0,   4,   108, 105, 110, 107, 100, 0,   7,   109, 111, 110, 105, 116,
    111, 114, 106, 131, 108, 0,   0,   0,   2,   97,  1,   107, 0,   3,   116, 119, 111, 106,
};
static const unsigned char VEC_SPAWN_REPLY[119] = {
    0,   0,   0,   115, 112, 131, 104, 5,   97,  31,  90,  0,   3,   100, 0,   17,  112,
    101, 101, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 101,
    83,  241, 1,   0,   0,   0,   1,   0,   0,   0,   2,   0,   0,   0,   3,   88,  100,
    0,   17,  112, 101, 101, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112,
    108, 101, 0,   0,   0,   87,  0,   0,   0,   0,   101, 83,  241, 1,   97,  3,   88,
    100, 0,   19,  99,  97,  99,  116, 111, 114, 64,  104, 111, 115, 116, 46,  101, 120,
    97,  109, 112, 108, 101, 0,   0,   0,   12,  0,   0,   0,   3,   101, 83,  241, 2,
};
static const unsigned char VEC_UNLINK_ID[87] = {
    0,   0,   0,   83,  112, 131, 104, 4,   97,  35,  110, 6,   0,   242, 47,  206, 115, 58,
    11,  88,  100, 0,   17,  112, 101, 101, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,
    109, 112, 108, 101, 0,   0,   0,   87,  0,   0,   0,   0,   101, 83,  241, 1,   88,  100,
    0,   19,  99,  97,  99,  116, 111, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109,
    112, 108, 101, 0,   0,   0,   12,  0,   0,   0,   3,   101, 83,  241, 2,
};
static const unsigned char VEC_UNLINK_ID_ACK[89] = {
    0,   0,   0,   85,  112, 131, 104, 4,   97,  36,  110, 8,   0,   255, 255, 255, 255, 255,
    255, 255, 255, 88,  100, 0,   19,  99,  97,  99,  116, 111, 114, 64,  104, 111, 115, 116,
    46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   12,  0,   0,   0,   3,   101, 83,
    241, 2,   88,  100, 0,   17,  112, 101, 101, 114, 64,  104, 111, 115, 116, 46,  101, 120,
    97,  109, 112, 108, 101, 0,   0,   0,   87,  0,   0,   0,   0,   101, 83,  241, 1,
};
static const unsigned char VEC_ALIAS_SEND[149] = {
    0,   0,   0,   145, 112, 131, 104, 3,   97,  33,  88,  100, 0,   17,  112, 101, 101, 114, 64,
    104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,   0,   0,   87,  0,   0,   0,
    0,   101, 83,  241, 1,   90,  0,   5,   100, 0,   19,  99,  97,  99,  116, 111, 114, 64,  104,
    111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 101, 83,  241, 2,   0,   0,   0,   11,
    0,   0,   0,   22,  0,   0,   0,   33,  0,   0,   0,   44,  0,   0,   0,   55,  131, 104, 5,
    100, 0,   5,   104, 101, 108, 108, 111, 109, 0,   0,   0,   5,   119, 111, 114, 108, 100, 97,
    42,  108, 0,   0,   0,   2,   70,  63,  248, 0,   0,   0,   0,   0,   0,   107, 0,   3,   115,
    116, 114, 106, 116, 0,   0,   0,   1,   100, 0,   1,   107, 100, 0,   1,   118,
};
static const unsigned char VEC_UNLINK_OLD[78] = {
    0,   0,   0,   74,  112, 131, 104, 3,   97,  4,   88,  100, 0,   17,  112, 101,
    101, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112, 108, 101, 0,
    0,   0,   87,  0,   0,   0,   0,   101, 83,  241, 1,   88,  100, 0,   19,  99,
    97,  99,  116, 111, 114, 64,  104, 111, 115, 116, 46,  101, 120, 97,  109, 112,
    108, 101, 0,   0,   0,   12,  0,   0,   0,   3,   101, 83,  241, 2,
};
static const unsigned char VEC_NODE_LINK[10] = {
    0, 0, 0, 6, 112, 131, 104, 1, 97, 5,
};
static const unsigned char VEC_UNKNOWN_OP[29] = {
    0,   0,   0, 25, 112, 131, 104, 3,   97,  99, 100, 0,  3,  102, 111,
    111, 107, 0, 3,  98,  97,  114, 131, 100, 0,  3,   98, 97, 122,
};
static const unsigned char VEC_MSG[57] = {
    131, 104, 5,   100, 0,   5,   104, 101, 108, 108, 111, 109, 0, 0, 0,   5,   119, 111, 114,
    108, 100, 97,  42,  108, 0,   0,   0,   2,   70,  63,  248, 0, 0, 0,   0,   0,   0,   107,
    0,   3,   115, 116, 114, 106, 116, 0,   0,   0,   1,   100, 0, 1, 107, 100, 0,   1,   118,
};
static const unsigned char VEC_TOKEN[55] = {
    131, 104, 5,   97, 0,  100, 0,   10,  115, 101, 108, 102, 95,  108, 97, 98,  101, 108, 97,
    7,   88,  100, 0,  17, 112, 101, 101, 114, 64,  104, 111, 115, 116, 46, 101, 120, 97,  109,
    112, 108, 101, 0,  0,  0,   87,  0,   0,   0,   0,   101, 83,  241, 1,  97,  3,
};
static const unsigned char VEC_MD5_DEADBEEF[16] = {
    77, 151, 87, 205, 122, 231, 115, 170, 241, 160, 141, 0, 255, 152, 19, 24,
};
static const unsigned char VEC_MD5_ZERO[16] = {
    207, 205, 32, 132, 149, 213, 101, 239, 102, 231, 223, 249, 249, 135, 100, 218,
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Deterministic "random" source with RAND_bytes' signature. */
static uint32_t rand_state = 0x12345678;
static int rand_fail;
static int test_rand(unsigned char *buf, int num)
{
    if (rand_fail)
        return 0;
    for (int i = 0; i < num; i++) {
        rand_state = rand_state * 1103515245u + 12345u;
        buf[i] = (unsigned char)(rand_state >> 16);
    }
    return 1;
}

typedef struct obuf {
    unsigned char data[8192];
    ca_dist_out out;
} obuf;

static void obuf_init(obuf *o)
{
    o->out.data = o->data;
    o->out.cap = sizeof o->data;
    o->out.len = 0;
}

static void hs_config(ca_dist_hs_config *c, ca_dist_role role, const char *name, const char *cookie)
{
    memset(c, 0, sizeof *c);
    c->role = role;
    c->node_name = name;
    c->cookie = cookie;
    c->creation = role == CA_DIST_INITIATOR ? 0x11111111u : 0x22222222u;
    c->rand = test_rand;
}

/*
 * Run two machines against each other in memory, `chunk` bytes per feed
 * (1 = byte at a time). Bytes each side sends are queued for the other.
 * Returns when neither makes progress.
 */
typedef struct pipe_ {
    unsigned char q[16384];
    size_t len;
} pipe_;

static int feed_some(ca_dist_hs *hs, pipe_ *in, pipe_ *out, size_t chunk, int *rc)
{
    if (hs->state != CA_DIST_HS_RUNNING || in->len == 0)
        return 0;
    obuf o;
    obuf_init(&o);
    size_t n = in->len < chunk ? in->len : chunk, used = 0;
    *rc = ca__dist_hs_feed(hs, in->q, n, &used, &o.out);
    memmove(in->q, in->q + used, in->len - used);
    in->len -= used;
    CU_ASSERT_FATAL(out->len + o.out.len <= sizeof out->q);
    memcpy(out->q + out->len, o.data, o.out.len);
    out->len += o.out.len;
    return used > 0;
}

static void run_pair(ca_dist_hs *a, ca_dist_hs *b, size_t chunk, int *rca, int *rcb)
{
    static pipe_ ab, ba;
    ab.len = ba.len = 0;
    obuf o;
    obuf_init(&o);
    *rca = *rcb = 0;
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_start(a, &o.out), 0);
    memcpy(ab.q, o.data, o.out.len);
    ab.len = o.out.len;
    obuf_init(&o);
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_start(b, &o.out), 0);
    CU_ASSERT_EQUAL(o.out.len, 0); /* the acceptor waits */
    for (;;) {
        int progress = feed_some(b, &ab, &ba, chunk, rcb);
        progress |= feed_some(a, &ba, &ab, chunk, rca);
        if (!progress)
            break;
    }
}

/* ------------------------------------------------------------------ */
/* EPMD                                                                */
/* ------------------------------------------------------------------ */

static void test_epmd_alive2_req(void)
{
    obuf o;
    obuf_init(&o);
    CU_ASSERT_EQUAL(ca__epmd_alive2_req(&o.out, "cactor", 4370), 0);
    static const unsigned char want[] = {
        0,    19,                                 /* length */
        120,                                      /* ALIVE2_REQ */
        0x11, 0x12,                               /* port 4370 */
        72,                                       /* hidden */
        0,                                        /* tcp */
        0,    6,    0,   6,                       /* highest, lowest */
        0,    6,    'c', 'a', 'c', 't', 'o', 'r', /* name */
        0,    0,                                  /* no extra */
    };
    CU_ASSERT_EQUAL(o.out.len, sizeof want);
    CU_ASSERT(memcmp(o.data, want, sizeof want) == 0);

    CU_ASSERT_EQUAL(ca__epmd_alive2_req(&o.out, "", 1), CA_EBADNAME);
    CU_ASSERT_EQUAL(ca__epmd_alive2_req(&o.out, "a@b", 1), CA_EBADNAME);
    CU_ASSERT_EQUAL(ca__epmd_alive2_req(&o.out, NULL, 1), CA_EBADNAME);
    unsigned char small[10];
    ca_dist_out so = {small, sizeof small, 0};
    CU_ASSERT_EQUAL(ca__epmd_alive2_req(&so, "cactor", 1), CA_ETOOBIG);
    CU_ASSERT_EQUAL(so.len, 0);
}

static void test_epmd_alive2_resp(void)
{
    static const unsigned char x[] = {118, 0, 0x12, 0x34, 0x56, 0x78, 0xEE};
    size_t used = 99;
    uint32_t cr = 0;
    for (size_t n = 0; n < 6; n++) { /* every partial answer: wait */
        CU_ASSERT_EQUAL(ca__epmd_alive2_resp(x, n, &used, &cr), 0);
        CU_ASSERT_EQUAL(used, 0);
    }
    CU_ASSERT_EQUAL(ca__epmd_alive2_resp(x, sizeof x, &used, &cr), 0);
    CU_ASSERT_EQUAL(used, 6);
    CU_ASSERT_EQUAL(cr, 0x12345678u);

    static const unsigned char old[] = {121, 0, 0x01, 0x02};
    CU_ASSERT_EQUAL(ca__epmd_alive2_resp(old, 3, &used, &cr), 0);
    CU_ASSERT_EQUAL(used, 0);
    CU_ASSERT_EQUAL(ca__epmd_alive2_resp(old, sizeof old, &used, &cr), 0);
    CU_ASSERT_EQUAL(used, 4);
    CU_ASSERT_EQUAL(cr, 0x0102u);

    static const unsigned char taken[] = {118, 1};
    CU_ASSERT_EQUAL(ca__epmd_alive2_resp(taken, 2, &used, &cr), CA_EEXIST);
    static const unsigned char junk[] = {42, 0, 0, 0};
    CU_ASSERT_EQUAL(ca__epmd_alive2_resp(junk, 1, &used, &cr), CA_EPROTO);
    CU_ASSERT_EQUAL(ca__epmd_alive2_resp(junk, 4, &used, &cr), CA_EPROTO);
}

static void test_epmd_port_please(void)
{
    obuf o;
    obuf_init(&o);
    CU_ASSERT_EQUAL(ca__epmd_port_please2_req(&o.out, "peer"), 0);
    static const unsigned char want[] = {0, 5, 122, 'p', 'e', 'e', 'r'};
    CU_ASSERT_EQUAL(o.out.len, sizeof want);
    CU_ASSERT(memcmp(o.data, want, sizeof want) == 0);
    CU_ASSERT_EQUAL(ca__epmd_port_please2_req(&o.out, "x@y"), CA_EBADNAME);

    static const unsigned char resp[] = {
        119, 0, 0x23, 0x28, 77,  0, 0, 6,   0,   5,
        0,   3, 'f',  'o',  'o', 0, 2, 'x', 'y', 0xFF, /* not part of the answer */
    };
    ca_epmd_node node;
    size_t used = 99;
    for (size_t n = 0; n < sizeof resp - 1; n++) {
        CU_ASSERT_EQUAL(ca__epmd_port2_resp(resp, n, &used, &node), 0);
        CU_ASSERT_EQUAL(used, 0);
    }
    CU_ASSERT_EQUAL(ca__epmd_port2_resp(resp, sizeof resp, &used, &node), 0);
    CU_ASSERT_EQUAL(used, sizeof resp - 1);
    CU_ASSERT_EQUAL(node.port, 9000);
    CU_ASSERT_EQUAL(node.node_type, 77);
    CU_ASSERT_EQUAL(node.protocol, 0);
    CU_ASSERT_EQUAL(node.highest, 6);
    CU_ASSERT_EQUAL(node.lowest, 5);
    CU_ASSERT(node.name.len == 3 && memcmp(node.name.p, "foo", 3) == 0);
    CU_ASSERT(node.extra.len == 2 && memcmp(node.extra.p, "xy", 2) == 0);

    static const unsigned char notfound[] = {119, 1};
    CU_ASSERT_EQUAL(ca__epmd_port2_resp(notfound, 2, &used, &node), CA_ENOENT);
    CU_ASSERT_EQUAL(ca__epmd_port2_resp(notfound, 1, &used, &node), 0);
    CU_ASSERT_EQUAL(used, 0);
    static const unsigned char bad[] = {120, 0};
    CU_ASSERT_EQUAL(ca__epmd_port2_resp(bad, 2, &used, &node), CA_EPROTO);
    static const unsigned char noname[] = {119, 0, 0, 1, 77, 0, 0, 6, 0, 6, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(ca__epmd_port2_resp(noname, sizeof noname, &used, &node), CA_EPROTO);
}

/* ------------------------------------------------------------------ */
/* Handshake                                                           */
/* ------------------------------------------------------------------ */

static void test_digest_matches_erlang(void)
{
    unsigned char d[16];
    CU_ASSERT_EQUAL(ca__dist_digest("secretcookie", 12, 0xDEADBEEFu, d), 0);
    CU_ASSERT(memcmp(d, VEC_MD5_DEADBEEF, 16) == 0);
    CU_ASSERT_EQUAL(ca__dist_digest("", 0, 0, d), 0);
    CU_ASSERT(memcmp(d, VEC_MD5_ZERO, 16) == 0);
}

static void test_flags(void)
{
    CU_ASSERT_EQUAL(ca__dist_flags_missing(CA_DFLAG_OFFER, CA_DFLAG_MANDATORY_25), 0);
    CU_ASSERT_EQUAL(ca__dist_flags_missing(CA_DFLAG_MANDATORY_25_DIGEST, CA_DFLAG_MANDATORY_25), 0);
    CU_ASSERT_EQUAL(
        ca__dist_flags_missing(CA_DFLAG_MANDATORY_25 & ~CA_DFLAG_MAP_TAG, CA_DFLAG_MANDATORY_25),
        CA_DFLAG_MAP_TAG);
    /* What we offer: the mandatory set, the promised extras, and never
     * the flags that would change the framing. */
    CU_ASSERT_EQUAL(CA_DFLAG_OFFER & CA_DFLAG_MANDATORY_25, CA_DFLAG_MANDATORY_25);
    CU_ASSERT((CA_DFLAG_OFFER & CA_DFLAG_SEND_SENDER) != 0);
    CU_ASSERT((CA_DFLAG_OFFER & CA_DFLAG_UNLINK_ID) != 0);
    CU_ASSERT((CA_DFLAG_OFFER & CA_DFLAG_SPAWN) != 0);
    CU_ASSERT((CA_DFLAG_OFFER & CA_DFLAG_ALIAS) != 0);
    CU_ASSERT((CA_DFLAG_OFFER & CA_DFLAG_V4_NC) != 0);
    CU_ASSERT_EQUAL(CA_DFLAG_OFFER &
                        (CA_DFLAG_PUBLISHED | CA_DFLAG_DIST_HDR_ATOM_CACHE | CA_DFLAG_FRAGMENTS |
                         CA_DFLAG_NAME_ME | CA_DFLAG_ATOM_CACHE | CA_DFLAG_HIDDEN_ATOM_CACHE),
                    0);
}

static void test_hs_init_errors(void)
{
    ca_dist_hs hs;
    ca_dist_hs_config c;
    hs_config(&c, CA_DIST_INITIATOR, "a@host", "cookie");
    CU_ASSERT_EQUAL(ca__dist_hs_init(&hs, &c), 0);
    c.node_name = "nohost";
    CU_ASSERT_EQUAL(ca__dist_hs_init(&hs, &c), CA_EBADNAME);
    c.node_name = "a@b@c";
    CU_ASSERT_EQUAL(ca__dist_hs_init(&hs, &c), CA_EBADNAME);
    c.node_name = "@b";
    CU_ASSERT_EQUAL(ca__dist_hs_init(&hs, &c), CA_EBADNAME);
    c.node_name = "a@host";
    c.rand = NULL;
    CU_ASSERT_EQUAL(ca__dist_hs_init(&hs, &c), CA_EINVAL);
    c.rand = test_rand;
    c.role = 0;
    CU_ASSERT_EQUAL(ca__dist_hs_init(&hs, &c), CA_EINVAL);
    c.role = CA_DIST_INITIATOR;
    char longc[CA_DIST_MAXCOOKIE + 2];
    memset(longc, 'c', sizeof longc - 1);
    longc[sizeof longc - 1] = 0;
    c.cookie = longc;
    CU_ASSERT_EQUAL(ca__dist_hs_init(&hs, &c), CA_ETOOBIG);
    /* a machine whose init failed is refused */
    obuf o;
    obuf_init(&o);
    size_t used;
    CU_ASSERT_EQUAL(ca__dist_hs_start(&hs, &o.out), CA_EINVAL);
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&hs, "\0\1N", 3, &used, &o.out), CA_EINVAL);
}

static void test_hs_send_name_layout(void)
{
    ca_dist_hs hs;
    ca_dist_hs_config c;
    hs_config(&c, CA_DIST_INITIATOR, "a@host", "cookie");
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&hs, &c), 0);
    obuf o;
    obuf_init(&o);
    CU_ASSERT_EQUAL(ca__dist_hs_start(&hs, &o.out), 0);
    CU_ASSERT_EQUAL_FATAL(o.out.len, 2 + 15 + 6);
    CU_ASSERT_EQUAL(o.data[0], 0);
    CU_ASSERT_EQUAL(o.data[1], 21);
    CU_ASSERT_EQUAL(o.data[2], 'N');
    CU_ASSERT_EQUAL(ca__get64(o.data + 3), CA_DFLAG_OFFER);
    CU_ASSERT_EQUAL(ca__get32(o.data + 11), 0x11111111u);
    CU_ASSERT_EQUAL(o.data[15], 0);
    CU_ASSERT_EQUAL(o.data[16], 6);
    CU_ASSERT(memcmp(o.data + 17, "a@host", 6) == 0);
    /* out too small is refused before anything is written */
    unsigned char small[64];
    ca_dist_out so = {small, sizeof small, 0};
    CU_ASSERT_EQUAL(ca__dist_hs_start(&hs, &so), CA_EINVAL);
}

static void check_pair_ok(size_t chunk)
{
    ca_dist_hs a, b;
    ca_dist_hs_config ca, cb;
    hs_config(&ca, CA_DIST_INITIATOR, "a@host", "sesame");
    ca.expect_peer = "b@host";
    hs_config(&cb, CA_DIST_ACCEPTOR, "b@host", "sesame");
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&a, &ca), 0);
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &cb), 0);
    int rca, rcb;
    run_pair(&a, &b, chunk, &rca, &rcb);
    CU_ASSERT_EQUAL(rca, 0);
    CU_ASSERT_EQUAL(rcb, 0);
    CU_ASSERT_EQUAL(a.state, CA_DIST_HS_DONE);
    CU_ASSERT_EQUAL(b.state, CA_DIST_HS_DONE);
    CU_ASSERT_STRING_EQUAL(a.peer_name, "b@host");
    CU_ASSERT_STRING_EQUAL(b.peer_name, "a@host");
    CU_ASSERT_EQUAL(a.peer_creation, 0x22222222u);
    CU_ASSERT_EQUAL(b.peer_creation, 0x11111111u);
    CU_ASSERT_EQUAL(a.peer_flags, CA_DFLAG_OFFER);
    CU_ASSERT_EQUAL(b.peer_flags, CA_DFLAG_OFFER);
    CU_ASSERT_EQUAL(ca__dist_hs_flags(&a), CA_DFLAG_OFFER);
    CU_ASSERT_EQUAL(ca__dist_hs_flags(&b), CA_DFLAG_OFFER);
    /* a finished machine takes no more input */
    obuf o;
    obuf_init(&o);
    size_t used;
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&a, "x", 1, &used, &o.out), CA_EINVAL);
}

static void test_hs_pair_whole(void)
{
    check_pair_ok(SIZE_MAX);
}

static void test_hs_pair_byte_at_a_time(void)
{
    check_pair_ok(1);
    check_pair_ok(2);
    check_pair_ok(7);
}

static void test_hs_wrong_cookie_acceptor(void)
{
    ca_dist_hs a, b;
    ca_dist_hs_config ca, cb;
    hs_config(&ca, CA_DIST_INITIATOR, "a@host", "one");
    hs_config(&cb, CA_DIST_ACCEPTOR, "b@host", "two");
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&a, &ca), 0);
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &cb), 0);
    int rca, rcb;
    run_pair(&a, &b, 1, &rca, &rcb);
    /* B checks first and refuses the reply; A waits for an ack that will
     * not come (the transport closes). */
    CU_ASSERT_EQUAL(b.state, CA_DIST_HS_FAILED);
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_BAD_REPLY);
    CU_ASSERT_EQUAL(rcb, CA_EPERM);
    CU_ASSERT_EQUAL(a.state, CA_DIST_HS_RUNNING);
    CU_ASSERT_STRING_EQUAL(ca__dist_hs_strerror(b.error),
                           "invalid challenge reply: peer's cookie differs");
}

/* The initiator side of a cookie mismatch: an ack whose digest was made
 * with another cookie (e.g. B's out-cookie for A differs). */
static void test_hs_wrong_cookie_initiator(void)
{
    for (int right = 0; right < 2; right++) {
        ca_dist_hs a, b;
        ca_dist_hs_config ca, cb;
        hs_config(&ca, CA_DIST_INITIATOR, "a@host", "same");
        hs_config(&cb, CA_DIST_ACCEPTOR, "b@host", "same");
        CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&a, &ca), 0);
        CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &cb), 0);
        obuf o1, o2, o3;
        obuf_init(&o1), obuf_init(&o2), obuf_init(&o3);
        size_t used;
        CU_ASSERT_EQUAL(ca__dist_hs_start(&a, &o1.out), 0);
        CU_ASSERT_EQUAL(ca__dist_hs_feed(&b, o1.data, o1.out.len, &used, &o2.out), 0);
        CU_ASSERT_EQUAL(ca__dist_hs_feed(&a, o2.data, o2.out.len, &used, &o3.out), 0);
        /* o3 is A's challenge_reply: 2 + 'r' + challenge + digest */
        CU_ASSERT_EQUAL_FATAL(o3.out.len, 23);
        CU_ASSERT_EQUAL(o3.data[2], 'r');
        uint32_t cha = ca__get32(o3.data + 3);
        unsigned char ack[19] = {0, 17, 'a'};
        CU_ASSERT_EQUAL(ca__dist_digest(right ? "same" : "other", right ? 4 : 5, cha, ack + 3), 0);
        obuf o4;
        obuf_init(&o4);
        int rc = ca__dist_hs_feed(&a, ack, sizeof ack, &used, &o4.out);
        if (right) {
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_EQUAL(a.state, CA_DIST_HS_DONE);
        } else {
            CU_ASSERT_EQUAL(rc, CA_EPERM);
            CU_ASSERT_EQUAL(a.state, CA_DIST_HS_FAILED);
            CU_ASSERT_EQUAL(a.error, CA_DIST_HS_E_BAD_ACK);
        }
        CU_ASSERT_EQUAL(o4.out.len, 0);
    }
}

/* A full handshake as an acceptor, with the initiator's messages
 * written by hand (as an Erlang node would send them). */
static void test_hs_acceptor_by_hand(void)
{
    ca_dist_hs b;
    ca_dist_hs_config cb;
    hs_config(&cb, CA_DIST_ACCEPTOR, "b@host", "secretcookie");
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &cb), 0);
    unsigned char m[64];
    /* the flags a real OTP 25.2.3 node sent us (normal, not hidden) */
    const uint64_t peer_flags = UINT64_C(0xd07df7fbd);
    ca__put16(m, 15 + 9);
    m[2] = 'N';
    ca__put64(m + 3, peer_flags);
    ca__put32(m + 11, 77);
    ca__put16(m + 15, 9);
    memcpy(m + 17, "erl@host1", 9);
    obuf o;
    obuf_init(&o);
    size_t used;
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&b, m, 26, &used, &o.out), 0);
    CU_ASSERT_EQUAL(used, 26);
    /* "sok" then the challenge */
    CU_ASSERT_EQUAL_FATAL(o.out.len, 5 + 2 + 19 + 6);
    CU_ASSERT(memcmp(o.data, "\0\3sok", 5) == 0);
    const unsigned char *ch = o.data + 5;
    CU_ASSERT_EQUAL(ch[1], 25);
    CU_ASSERT_EQUAL(ch[2], 'N');
    CU_ASSERT_EQUAL(ca__get64(ch + 3), CA_DFLAG_OFFER);
    uint32_t chb = ca__get32(ch + 11);
    CU_ASSERT_EQUAL(ca__get32(ch + 15), 0x22222222u);
    CU_ASSERT(memcmp(ch + 19, "\0\6b@host", 8) == 0);
    /* reply with A's challenge 0xDEADBEEF and the right digest */
    unsigned char r[23] = {0, 21, 'r'};
    ca__put32(r + 3, 0xDEADBEEFu);
    CU_ASSERT_EQUAL(ca__dist_digest("secretcookie", 12, chb, r + 7), 0);
    obuf_init(&o);
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&b, r, sizeof r, &used, &o.out), 0);
    CU_ASSERT_EQUAL(b.state, CA_DIST_HS_DONE);
    /* the ack answers 0xDEADBEEF: the digest Erlang computed */
    CU_ASSERT_EQUAL_FATAL(o.out.len, 19);
    CU_ASSERT(memcmp(o.data, "\0\21a", 3) == 0);
    CU_ASSERT(memcmp(o.data + 3, VEC_MD5_DEADBEEF, 16) == 0);
    CU_ASSERT_STRING_EQUAL(b.peer_name, "erl@host1");
    CU_ASSERT_EQUAL(b.peer_creation, 77);
    CU_ASSERT_EQUAL(b.peer_flags, peer_flags);
    CU_ASSERT_EQUAL(ca__dist_hs_flags(&b), CA_DFLAG_OFFER);
}

/* An OTP 23/24 node that sends the old 'n' send_name, then a complement. */
static void test_hs_old_send_name(void)
{
    for (int with_complement = 0; with_complement < 2; with_complement++) {
        ca_dist_hs b;
        ca_dist_hs_config cb;
        hs_config(&cb, CA_DIST_ACCEPTOR, "b@host", "c");
        CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &cb), 0);
        unsigned char m[64];
        ca__put16(m, 7 + 8);
        m[2] = 'n';
        ca__put16(m + 3, 5);
        ca__put32(m + 5, (uint32_t)CA_DFLAG_OFFER);
        memcpy(m + 9, "old@host", 8);
        obuf o;
        obuf_init(&o);
        size_t used;
        CU_ASSERT_EQUAL(ca__dist_hs_feed(&b, m, 17, &used, &o.out), 0);
        CU_ASSERT_STRING_EQUAL(b.peer_name, "old@host");
        CU_ASSERT(memcmp(o.data, "\0\3sok", 5) == 0);
        CU_ASSERT_EQUAL(o.data[7], 'N'); /* answered with the new challenge */
        uint32_t chb = ca__get32(o.data + 5 + 2 + 9);
        unsigned char msgs[11 + 23], *p = msgs;
        if (with_complement) {
            ca__put16(p, 9);
            p[2] = 'c';
            ca__put32(p + 3, (uint32_t)(CA_DFLAG_OFFER >> 32));
            ca__put32(p + 7, 0xC0FFEEu);
            p += 11;
        }
        ca__put16(p, 21);
        p[2] = 'r';
        ca__put32(p + 3, 1);
        CU_ASSERT_EQUAL(ca__dist_digest("c", 1, chb, p + 7), 0);
        p += 23;
        obuf_init(&o);
        int rc = ca__dist_hs_feed(&b, msgs, (size_t)(p - msgs), &used, &o.out);
        if (with_complement) {
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_EQUAL(b.state, CA_DIST_HS_DONE);
            CU_ASSERT_EQUAL(b.peer_creation, 0xC0FFEEu);
            CU_ASSERT_EQUAL(b.peer_flags, CA_DFLAG_OFFER);
        } else {
            CU_ASSERT_EQUAL(rc, CA_EPROTO);
            CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_UNEXPECTED);
        }
    }
}

/* Feed one hand-made message (tag + body) to a machine. */
static int feed_msg(ca_dist_hs *hs, const void *body, size_t n, obuf *o)
{
    unsigned char m[4096];
    ca__put16(m, (unsigned)n);
    memcpy(m + 2, body, n);
    size_t used;
    obuf_init(o);
    return ca__dist_hs_feed(hs, m, n + 2, &used, &o->out);
}

static void start_initiator(ca_dist_hs *a, int alive_continue)
{
    ca_dist_hs_config c;
    hs_config(&c, CA_DIST_INITIATOR, "a@host", "k");
    c.alive_continue = alive_continue;
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(a, &c), 0);
    obuf o;
    obuf_init(&o);
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_start(a, &o.out), 0);
}

static void test_hs_statuses(void)
{
    static const struct {
        const char *status;
        int alive_continue;
        int rc;
        ca_dist_hs_error err;
        const char *reply; /* what the initiator answers, if anything */
        size_t rlen;
    } cases[] = {
        {"sok", 0, 0, CA_DIST_HS_OK, "", 0},
        {"sok_simultaneous", 0, 0, CA_DIST_HS_OK, "", 0},
        {"snok", 0, CA_EBUSY, CA_DIST_HS_E_NOK, "", 0},
        {"snot_allowed", 0, CA_EPERM, CA_DIST_HS_E_NOT_ALLOWED, "", 0},
        {"salive", 0, CA_EBUSY, CA_DIST_HS_E_ALIVE, "\0\6sfalse", 8},
        {"salive", 1, 0, CA_DIST_HS_OK, "\0\5strue", 7},
        {"snamed:\0\6x@host\0\0\0\1", 0, CA_EPROTO, CA_DIST_HS_E_STATUS, "", 0},
        {"sbogus", 0, CA_EPROTO, CA_DIST_HS_E_STATUS, "", 0},
        {"s", 0, CA_EPROTO, CA_DIST_HS_E_STATUS, "", 0},
        {"xok", 0, CA_EPROTO, CA_DIST_HS_E_UNEXPECTED, "", 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        ca_dist_hs a;
        start_initiator(&a, cases[i].alive_continue);
        obuf o;
        size_t n = strlen(cases[i].status);
        if (strncmp(cases[i].status, "snamed:", 7) == 0)
            n = 7 + 2 + 6 + 4;
        CU_ASSERT_EQUAL(feed_msg(&a, cases[i].status, n, &o), cases[i].rc);
        CU_ASSERT_EQUAL(a.error, cases[i].err);
        CU_ASSERT_EQUAL(a.state, cases[i].rc ? CA_DIST_HS_FAILED : CA_DIST_HS_RUNNING);
        CU_ASSERT_EQUAL(o.out.len, cases[i].rlen);
        CU_ASSERT(memcmp(o.data, cases[i].reply, cases[i].rlen) == 0);
    }
}

static ca_dist_status policy_result;
static char policy_seen[64];
static ca_dist_status policy(void *ctx, const char *peer, uint64_t flags)
{
    (void)ctx;
    (void)flags;
    snprintf(policy_seen, sizeof policy_seen, "%s", peer);
    return policy_result;
}

static void acceptor_with_policy(ca_dist_hs *b, ca_dist_status st, obuf *o)
{
    ca_dist_hs_config c;
    hs_config(&c, CA_DIST_ACCEPTOR, "b@host", "k");
    c.status_fn = policy;
    policy_result = st;
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(b, &c), 0);
    unsigned char m[15 + 6] = {'N'};
    ca__put64(m + 1, CA_DFLAG_OFFER);
    ca__put16(m + 13, 6);
    memcpy(m + 15, "a@host", 6);
    feed_msg(b, m, sizeof m, o);
}

static void test_hs_acceptor_policy(void)
{
    ca_dist_hs b;
    obuf o;
    acceptor_with_policy(&b, CA_DIST_ST_NOT_ALLOWED, &o);
    CU_ASSERT_STRING_EQUAL(policy_seen, "a@host");
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_REFUSED);
    CU_ASSERT(o.out.len == 14 && memcmp(o.data, "\0\14snot_allowed", 14) == 0);

    acceptor_with_policy(&b, CA_DIST_ST_NOK, &o);
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_REFUSED);
    CU_ASSERT(o.out.len == 6 && memcmp(o.data, "\0\4snok", 6) == 0);

    acceptor_with_policy(&b, CA_DIST_ST_OK_SIMULTANEOUS, &o);
    CU_ASSERT_EQUAL(b.state, CA_DIST_HS_RUNNING);
    CU_ASSERT(memcmp(o.data, "\0\20sok_simultaneous", 18) == 0);
    CU_ASSERT_EQUAL(o.data[20], 'N');

    acceptor_with_policy(&b, CA_DIST_ST_ALIVE, &o);
    CU_ASSERT(o.out.len == 8 && memcmp(o.data, "\0\6salive", 8) == 0);
    CU_ASSERT_EQUAL(feed_msg(&b, "strue", 5, &o), 0);
    CU_ASSERT_EQUAL(o.data[2], 'N'); /* goes on with the challenge */

    acceptor_with_policy(&b, CA_DIST_ST_ALIVE, &o);
    CU_ASSERT_EQUAL(feed_msg(&b, "sfalse", 6, &o), CA_EBUSY);
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_ALIVE_FALSE);
}

static void test_hs_missing_flags(void)
{
    /* acceptor: refuses with not_allowed */
    ca_dist_hs b;
    ca_dist_hs_config c;
    hs_config(&c, CA_DIST_ACCEPTOR, "b@host", "k");
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &c), 0);
    unsigned char m[15 + 6] = {'N'};
    ca__put64(m + 1, CA_DFLAG_OFFER & ~CA_DFLAG_BIG_CREATION);
    ca__put16(m + 13, 6);
    memcpy(m + 15, "a@host", 6);
    obuf o;
    CU_ASSERT_EQUAL(feed_msg(&b, m, sizeof m, &o), CA_EPROTO);
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_FLAGS);
    CU_ASSERT(o.out.len == 14 && memcmp(o.data, "\0\14snot_allowed", 14) == 0);

    /* ... but takes the MANDATORY_25_DIGEST shorthand */
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &c), 0);
    ca__put64(m + 1, CA_DFLAG_MANDATORY_25_DIGEST | CA_DFLAG_SPAWN);
    CU_ASSERT_EQUAL(feed_msg(&b, m, sizeof m, &o), 0);
    CU_ASSERT_EQUAL(b.state, CA_DIST_HS_RUNNING);

    /* ... and refuses NAME_ME */
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &c), 0);
    ca__put64(m + 1, CA_DFLAG_OFFER | CA_DFLAG_NAME_ME);
    CU_ASSERT_EQUAL(feed_msg(&b, m, sizeof m, &o), CA_EPROTO);
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_NAME_ME);

    /* initiator: a challenge without UTF8_ATOMS */
    ca_dist_hs a;
    start_initiator(&a, 0);
    CU_ASSERT_EQUAL(feed_msg(&a, "sok", 3, &o), 0);
    unsigned char ch[19 + 6] = {'N'};
    ca__put64(ch + 1, CA_DFLAG_OFFER & ~CA_DFLAG_UTF8_ATOMS);
    ca__put16(ch + 17, 6);
    memcpy(ch + 19, "b@host", 6);
    CU_ASSERT_EQUAL(feed_msg(&a, ch, sizeof ch, &o), CA_EPROTO);
    CU_ASSERT_EQUAL(a.error, CA_DIST_HS_E_FLAGS);
    CU_ASSERT_EQUAL(o.out.len, 0);
}

static void test_hs_peer_name_check(void)
{
    ca_dist_hs a;
    ca_dist_hs_config c;
    hs_config(&c, CA_DIST_INITIATOR, "a@host", "k");
    c.expect_peer = "b@host";
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&a, &c), 0);
    obuf o;
    obuf_init(&o);
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_start(&a, &o.out), 0);
    CU_ASSERT_EQUAL(feed_msg(&a, "sok", 3, &o), 0);
    unsigned char ch[19 + 6 + 3] = {'N'};
    ca__put64(ch + 1, CA_DFLAG_OFFER);
    ca__put16(ch + 17, 6);
    memcpy(ch + 19, "c@host...", 9); /* trailing bytes are allowed */
    CU_ASSERT_EQUAL(feed_msg(&a, ch, sizeof ch, &o), CA_EPROTO);
    CU_ASSERT_EQUAL(a.error, CA_DIST_HS_E_PEER_NAME);
}

static void test_hs_bad_lengths(void)
{
    ca_dist_hs b;
    ca_dist_hs_config c;
    hs_config(&c, CA_DIST_ACCEPTOR, "b@host", "k");
    obuf o;
    size_t used;
    /* over the bound: refused on the length alone */
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &c), 0);
    obuf_init(&o);
    unsigned char big[2] = {0x08, 0x01}; /* 2049 */
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&b, big, 2, &used, &o.out), CA_ETOOBIG);
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_TOO_BIG);
    /* empty message */
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &c), 0);
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&b, "\0\0", 2, &used, &o.out), CA_EPROTO);
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_MALFORMED);
    /* name length beyond the message */
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &c), 0);
    unsigned char m[15 + 6] = {'N'};
    ca__put64(m + 1, CA_DFLAG_OFFER);
    ca__put16(m + 13, 7);
    memcpy(m + 15, "a@host", 6);
    CU_ASSERT_EQUAL(feed_msg(&b, m, sizeof m, &o), CA_EPROTO);
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_MALFORMED);
    /* a name that is not a node name */
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &c), 0);
    ca__put16(m + 13, 6);
    memcpy(m + 15, "a_host", 6);
    CU_ASSERT_EQUAL(feed_msg(&b, m, sizeof m, &o), CA_EPROTO);
    CU_ASSERT_EQUAL(o.out.len, 0);
    /* a failing random source */
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &c), 0);
    memcpy(m + 15, "a@host", 6);
    rand_fail = 1;
    CU_ASSERT_EQUAL(feed_msg(&b, m, sizeof m, &o), CA_EIO);
    rand_fail = 0;
    CU_ASSERT_EQUAL(b.error, CA_DIST_HS_E_RANDOM);
}

/* Bytes after the ack are the stream's, not the handshake's. */
static void test_hs_leaves_stream_bytes(void)
{
    ca_dist_hs a, b;
    ca_dist_hs_config ca, cb;
    hs_config(&ca, CA_DIST_INITIATOR, "a@host", "k");
    hs_config(&cb, CA_DIST_ACCEPTOR, "b@host", "k");
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&a, &ca), 0);
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &cb), 0);
    obuf o1, o2, o3, o4;
    obuf_init(&o1), obuf_init(&o2), obuf_init(&o3), obuf_init(&o4);
    size_t used;
    CU_ASSERT_EQUAL(ca__dist_hs_start(&a, &o1.out), 0);
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&b, o1.data, o1.out.len, &used, &o2.out), 0);
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&a, o2.data, o2.out.len, &used, &o3.out), 0);
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&b, o3.data, o3.out.len, &used, &o4.out), 0);
    CU_ASSERT_EQUAL(b.state, CA_DIST_HS_DONE);
    memset(o4.data + o4.out.len, 0, 4); /* a tick right behind the ack */
    obuf o5;
    obuf_init(&o5);
    CU_ASSERT_EQUAL(ca__dist_hs_feed(&a, o4.data, o4.out.len + 4, &used, &o5.out), 0);
    CU_ASSERT_EQUAL(a.state, CA_DIST_HS_DONE);
    CU_ASSERT_EQUAL(used, o4.out.len);
}

/* Record what an initiator sends in a good handshake (its whole input to
 * the acceptor), to truncate and mutate below. */
static size_t record_initiator_stream(unsigned char *buf, size_t cap, unsigned char *bstream,
                                      size_t *blen, uint32_t *a_rand)
{
    ca_dist_hs a, b;
    ca_dist_hs_config ca, cb;
    hs_config(&ca, CA_DIST_INITIATOR, "a@host", "k");
    hs_config(&cb, CA_DIST_ACCEPTOR, "b@host", "k");
    rand_state = 1;
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&a, &ca), 0);
    CU_ASSERT_EQUAL_FATAL(ca__dist_hs_init(&b, &cb), 0);
    obuf o1, o2, o3, o4;
    obuf_init(&o1), obuf_init(&o2), obuf_init(&o3), obuf_init(&o4);
    size_t used;
    ca__dist_hs_start(&a, &o1.out);
    ca__dist_hs_feed(&b, o1.data, o1.out.len, &used, &o2.out);
    *a_rand = rand_state; /* what A draws its challenge from */
    ca__dist_hs_feed(&a, o2.data, o2.out.len, &used, &o3.out);
    ca__dist_hs_feed(&b, o3.data, o3.out.len, &used, &o4.out);
    CU_ASSERT_FATAL(o1.out.len + o3.out.len <= cap);
    memcpy(buf, o1.data, o1.out.len);
    memcpy(buf + o1.out.len, o3.data, o3.out.len);
    memcpy(bstream, o2.data, o2.out.len);
    memcpy(bstream + o2.out.len, o4.data, o4.out.len);
    *blen = o2.out.len + o4.out.len;
    return o1.out.len + o3.out.len;
}

static void test_hs_truncated_and_mutated(void)
{
    unsigned char in[512], bin[2048];
    size_t blen;
    uint32_t a_rand;
    size_t n = record_initiator_stream(in, sizeof in, bin, &blen, &a_rand);
    /* every proper prefix: still running, never done or failed */
    for (size_t k = 0; k < n; k++) {
        ca_dist_hs b;
        ca_dist_hs_config c;
        hs_config(&c, CA_DIST_ACCEPTOR, "b@host", "k");
        rand_state = 1;
        ca__dist_hs_init(&b, &c);
        obuf o;
        obuf_init(&o);
        size_t used;
        CU_ASSERT_EQUAL(ca__dist_hs_feed(&b, in, k, &used, &o.out), 0);
        CU_ASSERT_EQUAL(b.state, CA_DIST_HS_RUNNING);
    }
    /* every byte changed, both roles: never a crash; the acceptor never
     * completes with a damaged digest */
    for (size_t k = 0; k < n; k++) {
        for (unsigned x = 1; x < 256; x <<= 1) {
            unsigned char m[512];
            memcpy(m, in, n);
            m[k] ^= (unsigned char)x;
            ca_dist_hs b;
            ca_dist_hs_config c;
            hs_config(&c, CA_DIST_ACCEPTOR, "b@host", "k");
            rand_state = 1;
            ca__dist_hs_init(&b, &c);
            obuf o;
            obuf_init(&o);
            size_t used;
            ca__dist_hs_feed(&b, m, n, &used, &o.out);
            if (k >= n - 16)
                CU_ASSERT_NOT_EQUAL(b.state, CA_DIST_HS_DONE);
        }
    }
    /* the acceptor's side replayed to an initiator that draws the same
     * challenge: intact it completes, a damaged ack digest never does */
    for (size_t k = 0; k <= blen; k++) {
        unsigned char m[2048];
        memcpy(m, bin, blen);
        if (k < blen)
            m[k] ^= 0x41;
        ca_dist_hs a;
        start_initiator(&a, 1);
        rand_state = a_rand;
        obuf o;
        obuf_init(&o);
        size_t used;
        ca__dist_hs_feed(&a, m, blen, &used, &o.out);
        if (k == blen)
            CU_ASSERT_EQUAL(a.state, CA_DIST_HS_DONE);
        if (k >= blen - 16 && k < blen)
            CU_ASSERT_NOT_EQUAL(a.state, CA_DIST_HS_DONE);
    }
}

static void test_hs_garbage(void)
{
    srand(7);
    for (int round = 0; round < 2000; round++) {
        unsigned char g[600];
        size_t n = (size_t)(rand() % (int)sizeof g);
        for (size_t i = 0; i < n; i++)
            g[i] = (unsigned char)rand();
        if (n >= 2 && (round & 1)) /* make the length plausible */
            ca__put16(g, (unsigned)(n - 2 - (size_t)(rand() % 3)));
        for (int role = 0; role < 2; role++) {
            ca_dist_hs h;
            if (role)
                start_initiator(&h, round & 2);
            else {
                ca_dist_hs_config c;
                hs_config(&c, CA_DIST_ACCEPTOR, "b@host", "k");
                ca__dist_hs_init(&h, &c);
            }
            obuf o;
            obuf_init(&o);
            size_t used;
            ca__dist_hs_feed(&h, g, n, &used, &o.out);
            CU_ASSERT(used <= n);
            CU_ASSERT_NOT_EQUAL(h.state, CA_DIST_HS_DONE);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Framing                                                             */
/* ------------------------------------------------------------------ */

typedef struct seen {
    int n;
    int ticks;
    size_t lens[16];
    uint8_t first[16];
} seen;

static int on_frame(void *ctx, const ca_dist_frame *f)
{
    seen *s = ctx;
    if (s->n < 16) {
        s->lens[s->n] = f->tick ? 0 : f->len;
        s->first[s->n] = f->tick ? 0 : (uint8_t)f->data[0];
    }
    s->n++;
    s->ticks += f->tick;
    return 0;
}

static size_t build_stream(unsigned char *buf)
{
    size_t n = 0;
    memset(buf, 0, 4), n += 4;
    memcpy(buf + n, VEC_SEND_SENDER, sizeof VEC_SEND_SENDER), n += sizeof VEC_SEND_SENDER;
    memset(buf + n, 0, 4), n += 4;
    memcpy(buf + n, VEC_LINK, sizeof VEC_LINK), n += sizeof VEC_LINK;
    return n;
}

static void check_stream_seen(const seen *s)
{
    CU_ASSERT_EQUAL(s->n, 4);
    CU_ASSERT_EQUAL(s->ticks, 2);
    CU_ASSERT_EQUAL(s->lens[1], sizeof VEC_SEND_SENDER - 5);
    CU_ASSERT_EQUAL(s->first[1], 131);
    CU_ASSERT_EQUAL(s->lens[3], sizeof VEC_LINK - 5);
}

static void test_frames_every_split(void)
{
    unsigned char stream[512];
    size_t n = build_stream(stream);
    /* two reads, split at every position */
    for (size_t cut = 0; cut <= n; cut++) {
        unsigned char buf[512];
        size_t have = 0, used;
        seen s = {0};
        memcpy(buf, stream, cut), have = cut;
        CU_ASSERT_EQUAL(ca__dist_frames_each(buf, have, 0, &used, on_frame, &s), 0);
        memmove(buf, buf + used, have - used), have -= used;
        memcpy(buf + have, stream + cut, n - cut), have += n - cut;
        CU_ASSERT_EQUAL(ca__dist_frames_each(buf, have, 0, &used, on_frame, &s), 0);
        CU_ASSERT_EQUAL(used, have);
        check_stream_seen(&s);
    }
    /* reads of every size up to the stream's */
    for (size_t chunk = 1; chunk <= n; chunk++) {
        unsigned char buf[512];
        size_t have = 0, pos = 0, used;
        seen s = {0};
        while (pos < n) {
            size_t k = n - pos < chunk ? n - pos : chunk;
            memcpy(buf + have, stream + pos, k), have += k, pos += k;
            CU_ASSERT_EQUAL(ca__dist_frames_each(buf, have, 0, &used, on_frame, &s), 0);
            memmove(buf, buf + used, have - used), have -= used;
        }
        CU_ASSERT_EQUAL(have, 0);
        check_stream_seen(&s);
    }
}

static void test_frame_cut_details(void)
{
    ca_dist_frame f;
    size_t used, need;
    unsigned char hdr[8] = {0x10, 0, 0, 1, 'p'}; /* 256 MiB + 1 */
    CU_ASSERT_EQUAL(ca__dist_frame_cut(hdr, 3, 0, &used, &need, &f), 0);
    CU_ASSERT_EQUAL(used, 0);
    CU_ASSERT_EQUAL(need, 4);
    CU_ASSERT_EQUAL(ca__dist_frame_cut(hdr, 4, 0, &used, &need, &f), CA_ETOOBIG);
    /* exactly the default maximum passes the check, and says how much */
    ca__put32(hdr, 256u << 20);
    CU_ASSERT_EQUAL(ca__dist_frame_cut(hdr, 5, 0, &used, &need, &f), 0);
    CU_ASSERT_EQUAL(used, 0);
    CU_ASSERT_EQUAL(need, 4 + ((size_t)256 << 20));
    /* a configured maximum */
    ca__put32(hdr, 101);
    CU_ASSERT_EQUAL(ca__dist_frame_cut(hdr, 4, 100, &used, &need, &f), CA_ETOOBIG);
    ca__put32(hdr, 100);
    CU_ASSERT_EQUAL(ca__dist_frame_cut(hdr, 5, 100, &used, &need, &f), 0);
    /* 4 GiB - 1 on a 64-bit max */
    ca__put32(hdr, 0xFFFFFFFFu);
    CU_ASSERT_EQUAL(ca__dist_frame_cut(hdr, 4, 0, &used, &need, &f), CA_ETOOBIG);
    /* a distribution header frame (atom cache) is refused, type told */
    unsigned char dh[8] = {0, 0, 0, 4, 68, 0, 0, 0};
    CU_ASSERT_EQUAL(ca__dist_frame_cut(dh, 5, 0, &used, &need, &f), CA_EPROTO);
    CU_ASSERT_EQUAL(f.type, CA_DIST_HEADER);
    CU_ASSERT_EQUAL(ca__dist_frame_cut(dh, 8, 0, &used, &need, &f), CA_EPROTO);
    /* a tick, and encoding one */
    CU_ASSERT_EQUAL(ca__dist_frame_cut("\0\0\0\0", 4, 0, &used, &need, &f), 0);
    CU_ASSERT_EQUAL(used, 4);
    CU_ASSERT(f.tick);
    ei_x_buff x;
    ei_x_new(&x);
    CU_ASSERT_EQUAL(ca__dist_encode_tick(&x), 0);
    CU_ASSERT(x.index == 4 && memcmp(x.buff, "\0\0\0\0", 4) == 0);
    ei_x_free(&x);
    /* a callback stop is passed through, with what was used so far */
    unsigned char two[8] = {0};
    seen s = {0};
    CU_ASSERT_EQUAL(ca__dist_frames_each(two, 8, 0, &used, on_frame, &s), 0);
    CU_ASSERT_EQUAL(used, 8);
    CU_ASSERT_EQUAL(s.ticks, 2);
}

/* ------------------------------------------------------------------ */
/* Control messages                                                    */
/* ------------------------------------------------------------------ */

/* Cut the single frame in v and decode its control message. */
static int decode_vec(const unsigned char *v, size_t n, ca_dist_ctrl *c)
{
    ca_dist_frame f;
    size_t used;
    int rc = ca__dist_frame_cut(v, n, 0, &used, NULL, &f);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL_FATAL(used, n);
    return ca__dist_ctrl_decode(f.data, f.len, c);
}

static void check_pid(const erlang_pid *p, const char *node, unsigned num, unsigned serial,
                      unsigned creation)
{
    CU_ASSERT_STRING_EQUAL(p->node, node);
    CU_ASSERT_EQUAL(p->num, num);
    CU_ASSERT_EQUAL(p->serial, serial);
    CU_ASSERT_EQUAL(p->creation, creation);
}

#define PEER   "peer@host.example"
#define CACTOR "cactor@host.example"
#define CR_P   1700000001u
#define CR_C   1700000002u

static void check_from_to(const ca_dist_ctrl *c)
{
    CU_ASSERT_FALSE(c->from.is_name);
    check_pid(&c->from.pid, PEER, 87, 0, CR_P);
    CU_ASSERT_FALSE(c->to.is_name);
    check_pid(&c->to.pid, CACTOR, 12, 3, CR_C);
}

static void check_ref3(const erlang_ref *r)
{
    CU_ASSERT_STRING_EQUAL(r->node, PEER);
    CU_ASSERT_EQUAL(r->creation, CR_P);
    CU_ASSERT_EQUAL(r->len, 3);
    CU_ASSERT(r->n[0] == 1 && r->n[1] == 2 && r->n[2] == 3);
}

static int span_is(ca_dist_span s, const void *bytes, size_t n)
{
    return s.len == n && memcmp(s.p, bytes, n) == 0;
}

static void test_ctrl_erlang_sends(void)
{
    ca_dist_ctrl c;
    CU_ASSERT_EQUAL(decode_vec(VEC_SEND_SENDER, sizeof VEC_SEND_SENDER, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_SEND_SENDER);
    CU_ASSERT_EQUAL(c.kind, CA_DIST_CTRL_SIGNAL);
    check_from_to(&c);
    CU_ASSERT(span_is(c.payload, VEC_MSG, sizeof VEC_MSG));
    /* the payload is a span into the frame, not a copy */
    CU_ASSERT(c.payload.p ==
              (const char *)VEC_SEND_SENDER + sizeof VEC_SEND_SENDER - sizeof VEC_MSG);

    CU_ASSERT_EQUAL(decode_vec(VEC_SEND_SENDER_TT, sizeof VEC_SEND_SENDER_TT, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_SEND_SENDER_TT);
    check_from_to(&c);
    CU_ASSERT(span_is(c.token, VEC_TOKEN + 1, sizeof VEC_TOKEN - 1));
    CU_ASSERT(span_is(c.payload, VEC_MSG, sizeof VEC_MSG));

    CU_ASSERT_EQUAL(decode_vec(VEC_REG_SEND, sizeof VEC_REG_SEND, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_REG_SEND);
    check_pid(&c.from.pid, PEER, 87, 0, CR_P);
    CU_ASSERT(c.to.is_name);
    CU_ASSERT_STRING_EQUAL(c.to.name, "caf\xc3\xa9_server"); /* Latin-1 made UTF-8 */
    CU_ASSERT(span_is(c.payload, VEC_MSG, sizeof VEC_MSG));

    CU_ASSERT_EQUAL(decode_vec(VEC_REG_SEND_UTF8, sizeof VEC_REG_SEND_UTF8, &c), 0);
    CU_ASSERT_STRING_EQUAL(c.to.name, "caf\xc3\xa9_\xe4\xb8\x96");
    check_pid(&c.from.pid, PEER, 87, 0, CR_P);

    CU_ASSERT_EQUAL(decode_vec(VEC_SEND, sizeof VEC_SEND, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_SEND);
    check_pid(&c.to.pid, CACTOR, 0xFFFFFFF0u, 0xABCDEF01u, CR_C); /* V4_NC pid */
    CU_ASSERT(span_is(c.payload, "\x83m\0\0\0\3bin", 9));

    CU_ASSERT_EQUAL(decode_vec(VEC_ALIAS_SEND, sizeof VEC_ALIAS_SEND, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_ALIAS_SEND);
    check_pid(&c.from.pid, PEER, 87, 0, CR_P);
    CU_ASSERT_STRING_EQUAL(c.ref.node, CACTOR);
    CU_ASSERT_EQUAL(c.ref.len, 5);
    CU_ASSERT(c.ref.n[0] == 11 && c.ref.n[4] == 55);
    CU_ASSERT(span_is(c.payload, VEC_MSG, sizeof VEC_MSG));
}

static void test_ctrl_erlang_signals(void)
{
    ca_dist_ctrl c;
    CU_ASSERT_EQUAL(decode_vec(VEC_LINK, sizeof VEC_LINK, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_LINK);
    check_from_to(&c);
    CU_ASSERT_EQUAL(c.payload.len, 0);

    CU_ASSERT_EQUAL(decode_vec(VEC_EXIT, sizeof VEC_EXIT, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_EXIT);
    check_from_to(&c);
    /* {shutdown, because}, bare (Latin-1 atoms as term_to_binary makes) */
    CU_ASSERT(span_is(c.reason, "h\2d\0\10shutdownd\0\7because", 23));

    CU_ASSERT_EQUAL(decode_vec(VEC_EXIT2_TT, sizeof VEC_EXIT2_TT, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_EXIT2_TT);
    check_from_to(&c);
    CU_ASSERT(span_is(c.token, VEC_TOKEN + 1, sizeof VEC_TOKEN - 1));
    CU_ASSERT(span_is(c.reason, "d\0\4kill", 7));

    CU_ASSERT_EQUAL(decode_vec(VEC_PAYLOAD_EXIT2, sizeof VEC_PAYLOAD_EXIT2, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_PAYLOAD_EXIT2);
    check_from_to(&c);
    CU_ASSERT_EQUAL(c.payload.len, 0);
    CU_ASSERT(c.reason.len > 0 && c.reason.p[0] == 'h'); /* bare, as in EXIT */

    CU_ASSERT_EQUAL(decode_vec(VEC_MONITOR_NAME, sizeof VEC_MONITOR_NAME, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_MONITOR_P);
    check_pid(&c.from.pid, PEER, 87, 0, CR_P);
    CU_ASSERT(c.to.is_name);
    CU_ASSERT_STRING_EQUAL(c.to.name, "some_server");
    check_ref3(&c.ref);

    CU_ASSERT_EQUAL(decode_vec(VEC_DEMONITOR_PID, sizeof VEC_DEMONITOR_PID, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_DEMONITOR_P);
    check_from_to(&c);
    check_ref3(&c.ref);

    CU_ASSERT_EQUAL(decode_vec(VEC_MONITOR_P_EXIT, sizeof VEC_MONITOR_P_EXIT, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_MONITOR_P_EXIT);
    check_pid(&c.from.pid, CACTOR, 12, 3, CR_C); /* the monitored */
    check_pid(&c.to.pid, PEER, 87, 0, CR_P);
    check_ref3(&c.ref);
    CU_ASSERT(span_is(c.reason, "d\0\6noproc", 9));

    CU_ASSERT_EQUAL(decode_vec(VEC_UNLINK_ID, sizeof VEC_UNLINK_ID, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_UNLINK_ID);
    CU_ASSERT_EQUAL(c.id, UINT64_C(12345678901234));
    check_from_to(&c);

    CU_ASSERT_EQUAL(decode_vec(VEC_UNLINK_ID_ACK, sizeof VEC_UNLINK_ID_ACK, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_UNLINK_ID_ACK);
    CU_ASSERT_EQUAL(c.id, UINT64_MAX);
    check_pid(&c.from.pid, CACTOR, 12, 3, CR_C);
}

static void test_ctrl_erlang_spawn_and_others(void)
{
    ca_dist_ctrl c;
    CU_ASSERT_EQUAL(decode_vec(VEC_SPAWN_REQUEST, sizeof VEC_SPAWN_REQUEST, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_SPAWN_REQUEST);
    check_ref3(&c.ref);
    check_pid(&c.from.pid, PEER, 87, 0, CR_P);
    check_pid(&c.group_leader, PEER, 64, 0, CR_P);
    CU_ASSERT_STRING_EQUAL(c.module, "mod");
    CU_ASSERT_STRING_EQUAL(c.function, "func");
    CU_ASSERT_EQUAL(c.arity, 2);
    CU_ASSERT(span_is(c.opts, "l\0\0\0\2d\0\4linkd\0\7monitorj", 23));
    /* ArgList [1, "two"] as payload, version byte included */
    CU_ASSERT(span_is(c.payload, "\x83l\0\0\0\2a\1k\0\3twoj", 15));

    CU_ASSERT_EQUAL(decode_vec(VEC_SPAWN_REPLY, sizeof VEC_SPAWN_REPLY, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_SPAWN_REPLY);
    check_ref3(&c.ref);
    check_pid(&c.to.pid, PEER, 87, 0, CR_P);
    CU_ASSERT_EQUAL(c.spawn_flags, 3);
    CU_ASSERT_FALSE(c.result.is_name);
    check_pid(&c.result.pid, CACTOR, 12, 3, CR_C);

    CU_ASSERT_EQUAL(decode_vec(VEC_UNLINK_OLD, sizeof VEC_UNLINK_OLD, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_UNLINK);
    CU_ASSERT_EQUAL(c.kind, CA_DIST_CTRL_IGNORED);
    CU_ASSERT_EQUAL(decode_vec(VEC_NODE_LINK, sizeof VEC_NODE_LINK, &c), 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_NODE_LINK);
    CU_ASSERT_EQUAL(c.kind, CA_DIST_CTRL_IGNORED);

    CU_ASSERT_EQUAL(decode_vec(VEC_UNKNOWN_OP, sizeof VEC_UNKNOWN_OP, &c), 0);
    CU_ASSERT_EQUAL(c.op, 99);
    CU_ASSERT_EQUAL(c.kind, CA_DIST_CTRL_UNKNOWN);
    CU_ASSERT(span_is(c.payload,
                      "\x83"
                      "d\0\3baz",
                      7));
}

/* Hand-made control terms that are terms but not control messages. */
static int decode_bytes(const char *b, size_t n)
{
    ca_dist_ctrl c;
    return ca__dist_ctrl_decode(b, n, &c);
}

static void test_ctrl_invalid(void)
{
    ca_dist_ctrl c;
    CU_ASSERT_EQUAL(decode_bytes("", 0), CA_EBADTERM);
    CU_ASSERT_EQUAL(decode_bytes("h\1a\1", 4), CA_EBADTERM);     /* no version */
    CU_ASSERT_EQUAL(decode_bytes("\x83h\2a\1", 5), CA_EBADTERM); /* cut */
    CU_ASSERT_EQUAL(decode_bytes("\x83"
                                 "a\1",
                                 3),
                    CA_EPROTO);                                   /* not a tuple */
    CU_ASSERT_EQUAL(decode_bytes("\x83h\0", 3), CA_EPROTO);       /* {} */
    CU_ASSERT_EQUAL(decode_bytes("\x83h\1d\0\1x", 7), CA_EPROTO); /* {x} */
    CU_ASSERT_EQUAL(decode_bytes("\x83h\1"
                                 "a\5",
                                 5),
                    0); /* {5} */
    CU_ASSERT_EQUAL(decode_bytes("\x83h\2"
                                 "a\5a\1",
                                 7),
                    CA_EPROTO); /* {5, 1} */
    CU_ASSERT_EQUAL(decode_bytes("\x83h\1"
                                 "a\5\x83j",
                                 7),
                    CA_EPROTO);                                      /* payload */
    CU_ASSERT_EQUAL(decode_bytes("\x83R\1", 3), CA_EBADTERM);        /* atom cache */
    CU_ASSERT_EQUAL(decode_bytes("\x83P\0\0\0\1x", 7), CA_EBADTERM); /* compressed */
    /* SEND_SENDER without its message, and with a message lacking 131 */
    size_t ctl = sizeof VEC_SEND_SENDER - 5 - sizeof VEC_MSG;
    const char *body = (const char *)VEC_SEND_SENDER + 5;
    CU_ASSERT_EQUAL(ca__dist_ctrl_decode(body, ctl, &c), CA_EPROTO);
    char tmp[256];
    memcpy(tmp, body, ctl);
    memcpy(tmp + ctl, VEC_MSG + 1, sizeof VEC_MSG - 1);
    CU_ASSERT_EQUAL(ca__dist_ctrl_decode(tmp, ctl + sizeof VEC_MSG - 1, &c), CA_EPROTO);
    /* LINK cut inside its To pid, and with a tag no term has there: not
     * terms at all, whichever field the reader was at */
    size_t ll = sizeof VEC_LINK - 5;
    CU_ASSERT_EQUAL(ca__dist_ctrl_decode((const char *)VEC_LINK + 5, ll - 3, &c), CA_EBADTERM);
    memcpy(tmp, VEC_LINK + 5, ll);
    tmp[38] = (char)0xff; /* the To pid's tag */
    CU_ASSERT_EQUAL(ca__dist_ctrl_decode(tmp, ll, &c), CA_EBADTERM);
    /* LINK with a stray message */
    memcpy(tmp, VEC_LINK + 5, ll);
    memcpy(tmp + ll, "\x83j", 2);
    CU_ASSERT_EQUAL(ca__dist_ctrl_decode(tmp, ll + 2, &c), CA_EPROTO);
    /* LINK whose To is an atom */
    CU_ASSERT_EQUAL(decode_bytes("\x83h\3"
                                 "a\1d\0\1xd\0\1y",
                                 13),
                    CA_EPROTO);
    /* UNLINK_ID with a negative id */
    CU_ASSERT_EQUAL(decode_bytes("\x83h\4"
                                 "a\43n\1\1\1d\0\1xd\0\1y",
                                 17),
                    CA_EPROTO);
    /* PAYLOAD_EXIT with two terms as reason */
    size_t pl = sizeof VEC_PAYLOAD_EXIT2 - 5;
    memcpy(tmp, VEC_PAYLOAD_EXIT2 + 5, pl);
    tmp[pl] = 'j';
    CU_ASSERT_EQUAL(ca__dist_ctrl_decode(tmp, pl + 1, &c), CA_EBADTERM);
}

static void test_etf_skip(void)
{
    size_t pos = 1;
    CU_ASSERT_EQUAL(ca__etf_skip((const char *)VEC_MSG, sizeof VEC_MSG, &pos), 0);
    CU_ASSERT_EQUAL(pos, sizeof VEC_MSG);
    for (size_t n = 1; n < sizeof VEC_MSG; n++) {
        pos = 1;
        CU_ASSERT_EQUAL(ca__etf_skip((const char *)VEC_MSG, n, &pos), CA_EBADTERM);
        CU_ASSERT_EQUAL(pos, 1);
    }
    /* a list nested 200000 deep: no recursion, no stack overflow */
    const size_t depth = 200000;
    size_t len = depth * 5 + 1 + depth;
    char *deep = malloc(len);
    CU_ASSERT_FATAL(deep != NULL);
    for (size_t i = 0; i < depth; i++)
        memcpy(deep + 5 * i, "l\0\0\0\1", 5);
    memset(deep + 5 * depth, 'j', 1 + depth);
    pos = 0;
    CU_ASSERT_EQUAL(ca__etf_skip(deep, len, &pos), 0);
    CU_ASSERT_EQUAL(pos, len);
    pos = 0;
    CU_ASSERT_EQUAL(ca__etf_skip(deep, len - 1, &pos), CA_EBADTERM);
    free(deep);
    /* a count far beyond the bytes is refused at once */
    pos = 0;
    CU_ASSERT_EQUAL(ca__etf_skip("l\xff\xff\xff\xffj", 6, &pos), CA_EBADTERM);
    pos = 0;
    CU_ASSERT_EQUAL(ca__etf_skip("t\xff\xff\xff\xff", 5, &pos), CA_EBADTERM);
}

/* Every prefix and many mutations of every Erlang frame: no crash, no
 * overread (under ASan), and a prefix shorter than the control term is
 * always an error. */
static const struct {
    const unsigned char *v;
    size_t n;
} VECS[] = {
#define V(a)                                                                                       \
    {                                                                                              \
        a, sizeof a                                                                                \
    }
    V(VEC_SEND_SENDER),   V(VEC_SEND_SENDER_TT), V(VEC_REG_SEND),      V(VEC_REG_SEND_UTF8),
    V(VEC_SEND),          V(VEC_LINK),           V(VEC_EXIT),          V(VEC_EXIT2_TT),
    V(VEC_PAYLOAD_EXIT2), V(VEC_MONITOR_NAME),   V(VEC_DEMONITOR_PID), V(VEC_MONITOR_P_EXIT),
    V(VEC_SPAWN_REQUEST), V(VEC_SPAWN_REPLY),    V(VEC_UNLINK_ID),     V(VEC_UNLINK_ID_ACK),
    V(VEC_ALIAS_SEND),    V(VEC_UNLINK_OLD),     V(VEC_NODE_LINK),     V(VEC_UNKNOWN_OP),
#undef V
};

static void test_ctrl_truncated_and_mutated(void)
{
    for (size_t i = 0; i < ARRAY_LEN(VECS); i++) {
        const char *body = (const char *)VECS[i].v + 5;
        size_t n = VECS[i].n - 5;
        size_t ctl = 1;
        CU_ASSERT_EQUAL_FATAL(ca__etf_skip(body, n, &ctl), 0);
        for (size_t k = 0; k < n; k++) {
            /* an exact-size heap copy, so ASan sees any overread */
            char *cut = malloc(k ? k : 1);
            memcpy(cut, body, k);
            ca_dist_ctrl c;
            int rc = ca__dist_ctrl_decode(cut, k, &c);
            if (k < ctl)
                CU_ASSERT(rc < 0);
            free(cut);
        }
        for (size_t k = 0; k < n; k++) {
            for (int x = 0; x < 8; x++) {
                char *m = malloc(n);
                memcpy(m, body, n);
                static const unsigned char vals[8] = {0, 0xFF, 0x7F, 0x80, 1, 'h', 'l', 'X'};
                m[k] = (char)vals[x];
                ca_dist_ctrl c;
                ca__dist_ctrl_decode(m, n, &c);
                free(m);
            }
        }
    }
}

static void test_ctrl_garbage(void)
{
    srand(11);
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand() % 64);
        char *g = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            g[i] = (char)"\x83hlatdwvXZrsjnmk\0\1\2\x05\xff"[rand() % 22];
        ca_dist_ctrl c;
        ca__dist_ctrl_decode(g, n, &c);
        free(g);
    }
}

/* --- encoders: frame out, decode back ----------------------------- */

static erlang_pid mkpid(const char *node, unsigned num, unsigned serial, unsigned cr)
{
    erlang_pid p;
    memset(&p, 0, sizeof p);
    snprintf(p.node, sizeof p.node, "%s", node);
    p.num = num;
    p.serial = serial;
    p.creation = cr;
    return p;
}

static erlang_ref mkref(const char *node, unsigned cr, int len)
{
    erlang_ref r;
    memset(&r, 0, sizeof r);
    snprintf(r.node, sizeof r.node, "%s", node);
    r.creation = cr;
    r.len = len;
    for (int i = 0; i < len; i++)
        r.n[i] = 1000u * (unsigned)(i + 1) + 7;
    return r;
}

static int pid_eq(const erlang_pid *a, const erlang_pid *b)
{
    return strcmp(a->node, b->node) == 0 && a->num == b->num && a->serial == b->serial &&
           a->creation == b->creation;
}

static int ref_eq(const erlang_ref *a, const erlang_ref *b)
{
    return strcmp(a->node, b->node) == 0 && a->len == b->len && a->creation == b->creation &&
           memcmp(a->n, b->n, sizeof(unsigned) * (size_t)a->len) == 0;
}

/* Decode the one frame at x->buff[start..]: checks the length prefix. */
static void decode_x(const ei_x_buff *x, int start, ca_dist_ctrl *c, int want_rc)
{
    ca_dist_frame f;
    size_t used;
    size_t n = (size_t)(x->index - start);
    CU_ASSERT_EQUAL_FATAL(ca__dist_frame_cut(x->buff + start, n, 0, &used, NULL, &f), 0);
    CU_ASSERT_EQUAL_FATAL(used, n);
    CU_ASSERT_EQUAL(ca__dist_ctrl_decode(f.data, f.len, c), want_rc);
}

/* The start of a pass-through frame {Op, From, _} by ei alone;
 * ei_frame_end patches its length in. */
static int ei_frame_begin(ei_x_buff *w, long op, const erlang_pid *from)
{
    int s = w->index;
    ei_x_append_buf(w, "\0\0\0\0p", 5);
    ei_x_encode_version(w);
    ei_x_encode_tuple_header(w, 3);
    ei_x_encode_long(w, op);
    ei_x_encode_pid(w, from);
    return s;
}

static void ei_frame_end(ei_x_buff *w, int s)
{
    ca__put32((unsigned char *)w->buff + s, (uint32_t)(w->index - s - 4));
}

/* Pids and refs with ASCII node names are written without ei (control.c,
 * enc_pid/enc_ref): the bytes must be ei's, whatever the values; others
 * still go through ei. */
static void test_encode_pids_refs_as_ei(void)
{
    const erlang_pid pids[] = {
        mkpid("cactor@h", 1, 2, 3), mkpid("a@b", 0, 0, 0),
        mkpid("erl@127.0.0.1", 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu),
        mkpid("erl@h\xc3\xa9", 7, 8, 9), /* UTF-8: ei's path */
    };
    const erlang_ref refs[] = {mkref("cactor@h", 3, 3), mkref("erl@127.0.0.1", 0xFFFFFFFFu, 5),
                               mkref("x@y", 1, 1), mkref("erl@h\xc3\xa9", 9, 5)};
    for (size_t i = 0; i < ARRAY_LEN(pids); i++) {
        const erlang_pid *a = &pids[i], *b = &pids[(i + 1) % ARRAY_LEN(pids)];
        const erlang_ref *r = &refs[i];
        ei_x_buff got, want;
        ei_x_new(&got);
        ei_x_new(&want);
        CU_ASSERT_EQUAL_FATAL(ca__dist_encode_link(&got, a, b), 0);
        CU_ASSERT_EQUAL_FATAL(
            ca__dist_encode_alias_send(&got, a, r, (const char *)VEC_MSG, sizeof VEC_MSG), 0);
        /* the same frames, every term by ei */
        int s = ei_frame_begin(&want, CA_DOP_LINK, a);
        ei_x_encode_pid(&want, b);
        ei_frame_end(&want, s);
        s = ei_frame_begin(&want, CA_DOP_ALIAS_SEND, a);
        ei_x_encode_ref(&want, r);
        ei_x_append_buf(&want, (const char *)VEC_MSG, sizeof VEC_MSG);
        ei_frame_end(&want, s);
        CU_ASSERT_EQUAL(got.index, want.index);
        CU_ASSERT(got.index == want.index && memcmp(got.buff, want.buff, (size_t)got.index) == 0);
        ei_x_free(&got);
        ei_x_free(&want);
    }
}

static void test_encode_round_trips(void)
{
    erlang_pid a = mkpid("cactor@h", 1, 2, 3);
    erlang_pid b = mkpid("erl@h\xc3\xa9", 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu);
    erlang_ref r5 = mkref("erl@h\xc3\xa9", 9, 5), r3 = mkref("cactor@h", 3, 3);
    ca_dist_ctrl c;
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_append_buf(&x, "junk", 4); /* frames append after what is there */
    int s = x.index;

    CU_ASSERT_EQUAL(ca__dist_encode_send_sender(&x, &a, &b, (const char *)VEC_MSG, sizeof VEC_MSG),
                    0);
    decode_x(&x, s, &c, 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_SEND_SENDER);
    CU_ASSERT(pid_eq(&c.from.pid, &a) && pid_eq(&c.to.pid, &b));
    CU_ASSERT(span_is(c.payload, VEC_MSG, sizeof VEC_MSG));
    CU_ASSERT(memcmp(x.buff, "junk", 4) == 0);

    /* a message given without its version byte gets one */
    s = x.index;
    CU_ASSERT_EQUAL(ca__dist_encode_send(&x, &b, (const char *)VEC_MSG + 1, sizeof VEC_MSG - 1), 0);
    decode_x(&x, s, &c, 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_SEND);
    CU_ASSERT(pid_eq(&c.to.pid, &b));
    CU_ASSERT(span_is(c.payload, VEC_MSG, sizeof VEC_MSG));

    s = x.index;
    CU_ASSERT_EQUAL(
        ca__dist_encode_reg_send(&x, &a, "caf\xc3\xa9", (const char *)VEC_MSG, sizeof VEC_MSG), 0);
    decode_x(&x, s, &c, 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_REG_SEND);
    CU_ASSERT(pid_eq(&c.from.pid, &a));
    CU_ASSERT(c.to.is_name && strcmp(c.to.name, "caf\xc3\xa9") == 0);
    CU_ASSERT(span_is(c.payload, VEC_MSG, sizeof VEC_MSG));

    s = x.index;
    CU_ASSERT_EQUAL(ca__dist_encode_alias_send(&x, &a, &r5, (const char *)VEC_MSG, sizeof VEC_MSG),
                    0);
    decode_x(&x, s, &c, 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_ALIAS_SEND);
    CU_ASSERT(ref_eq(&c.ref, &r5));

    s = x.index;
    CU_ASSERT_EQUAL(ca__dist_encode_link(&x, &a, &b), 0);
    decode_x(&x, s, &c, 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_LINK);
    CU_ASSERT(pid_eq(&c.from.pid, &a) && pid_eq(&c.to.pid, &b));

    const uint64_t ids[] = {1, 255, 256, 0x7FFFFFFF, 0x80000000u, UINT64_MAX};
    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        s = x.index;
        CU_ASSERT_EQUAL(ca__dist_encode_unlink_id(&x, ids[i], &a, &b), 0);
        decode_x(&x, s, &c, 0);
        CU_ASSERT_EQUAL(c.op, CA_DOP_UNLINK_ID);
        CU_ASSERT_EQUAL(c.id, ids[i]);
        s = x.index;
        CU_ASSERT_EQUAL(ca__dist_encode_unlink_id_ack(&x, ids[i], &b, &a), 0);
        decode_x(&x, s, &c, 0);
        CU_ASSERT_EQUAL(c.op, CA_DOP_UNLINK_ID_ACK);
        CU_ASSERT_EQUAL(c.id, ids[i]);
        CU_ASSERT(pid_eq(&c.from.pid, &b) && pid_eq(&c.to.pid, &a));
    }
    CU_ASSERT_EQUAL(ca__dist_encode_unlink_id(&x, 0, &a, &b), CA_EINVAL);

    /* reasons: with or without version byte, inside the tuple, bare */
    static const char killed[] = "\x83"
                                 "d\0\6killed";
    s = x.index;
    CU_ASSERT_EQUAL(ca__dist_encode_exit(&x, &a, &b, killed, 10), 0);
    decode_x(&x, s, &c, 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_EXIT);
    CU_ASSERT(span_is(c.reason, killed + 1, 9));
    s = x.index;
    CU_ASSERT_EQUAL(ca__dist_encode_exit2(&x, &a, &b, killed + 1, 9), 0);
    decode_x(&x, s, &c, 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_EXIT2);
    CU_ASSERT(span_is(c.reason, killed + 1, 9));

    ca_dist_proc to_pid = {0}, to_name = {0};
    to_pid.pid = b;
    to_name.is_name = 1;
    strcpy(to_name.name, "registered");
    for (int k = 0; k < 2; k++) {
        const ca_dist_proc *t = k ? &to_name : &to_pid;
        s = x.index;
        CU_ASSERT_EQUAL(ca__dist_encode_monitor_p(&x, &a, t, &r3), 0);
        decode_x(&x, s, &c, 0);
        CU_ASSERT_EQUAL(c.op, CA_DOP_MONITOR_P);
        CU_ASSERT_EQUAL(c.to.is_name, k);
        CU_ASSERT(k ? strcmp(c.to.name, "registered") == 0 : pid_eq(&c.to.pid, &b));
        CU_ASSERT(ref_eq(&c.ref, &r3));
        s = x.index;
        CU_ASSERT_EQUAL(ca__dist_encode_demonitor_p(&x, &a, t, &r3), 0);
        decode_x(&x, s, &c, 0);
        CU_ASSERT_EQUAL(c.op, CA_DOP_DEMONITOR_P);
        s = x.index;
        CU_ASSERT_EQUAL(ca__dist_encode_monitor_p_exit(&x, t, &a, &r3, killed, 10), 0);
        decode_x(&x, s, &c, 0);
        CU_ASSERT_EQUAL(c.op, CA_DOP_MONITOR_P_EXIT);
        CU_ASSERT_EQUAL(c.from.is_name, k);
        CU_ASSERT(pid_eq(&c.to.pid, &a));
        CU_ASSERT(span_is(c.reason, killed + 1, 9));
    }

    ca_dist_proc ok = {0}, err = {0};
    ok.pid = a;
    err.is_name = 1;
    strcpy(err.name, "notsup");
    s = x.index;
    CU_ASSERT_EQUAL(ca__dist_encode_spawn_reply(&x, &r5, &b, 3, &ok), 0);
    decode_x(&x, s, &c, 0);
    CU_ASSERT_EQUAL(c.op, CA_DOP_SPAWN_REPLY);
    CU_ASSERT(ref_eq(&c.ref, &r5) && pid_eq(&c.to.pid, &b));
    CU_ASSERT_EQUAL(c.spawn_flags, 3);
    CU_ASSERT(!c.result.is_name && pid_eq(&c.result.pid, &a));
    s = x.index;
    CU_ASSERT_EQUAL(ca__dist_encode_spawn_reply(&x, &r5, &b, 0, &err), 0);
    decode_x(&x, s, &c, 0);
    CU_ASSERT(c.result.is_name && strcmp(c.result.name, "notsup") == 0);

    /* errors leave x as it was */
    s = x.index;
    CU_ASSERT_EQUAL(ca__dist_encode_send_sender(&x, &a, &b, "\x83h\2a\1", 5), CA_EBADTERM);
    CU_ASSERT_EQUAL(ca__dist_encode_exit(&x, &a, &b,
                                         "\x83"
                                         "a\1a\2",
                                         5),
                    CA_EBADTERM);
    CU_ASSERT_EQUAL(ca__dist_encode_exit(&x, &a, &b, NULL, 0), CA_EBADTERM);
    CU_ASSERT_EQUAL(ca__dist_encode_reg_send(&x, &a, "\xff", "\x83j", 2), CA_EINVAL);
    erlang_ref r0 = mkref("x@y", 1, 0);
    CU_ASSERT_EQUAL(ca__dist_encode_monitor_p(&x, &a, &to_pid, &r0), CA_EINVAL);
    CU_ASSERT_EQUAL(x.index, s);
    ei_x_free(&x);
}

/* A 64 MiB message goes through encoder, framer and decoder untouched. */
static void test_big_message(void)
{
    const size_t blen = (size_t)64 << 20;
    char *msg = malloc(blen + 6);
    CU_ASSERT_FATAL(msg != NULL);
    msg[0] = (char)131;
    msg[1] = 'm';
    ca__put32((unsigned char *)msg + 2, (uint32_t)blen);
    memset(msg + 6, 0x5A, blen);
    erlang_pid a = mkpid("cactor@h", 1, 2, 3), b = mkpid("erl@h", 4, 5, 6);
    ei_x_buff x;
    ei_x_new(&x);
    CU_ASSERT_EQUAL_FATAL(ca__dist_encode_send_sender(&x, &a, &b, msg, blen + 6), 0);
    ca_dist_frame f;
    size_t used;
    CU_ASSERT_EQUAL(ca__dist_frame_cut(x.buff, (size_t)x.index, 0, &used, NULL, &f), 0);
    CU_ASSERT_EQUAL(used, (size_t)x.index);
    ca_dist_ctrl c;
    CU_ASSERT_EQUAL(ca__dist_ctrl_decode(f.data, f.len, &c), 0);
    CU_ASSERT_EQUAL(c.payload.len, blen + 6);
    CU_ASSERT(c.payload.p + c.payload.len == x.buff + x.index);
    CU_ASSERT(memcmp(c.payload.p, msg, blen + 6) == 0);
    /* a 32 MiB limit refuses it */
    CU_ASSERT_EQUAL(ca__dist_frame_cut(x.buff, 4, (size_t)32 << 20, &used, NULL, &f), CA_ETOOBIG);
    ei_x_free(&x);
    free(msg);
}

/* ------------------------------------------------------------------ */

static void add(void)
{
    CU_pSuite s = CU_add_suite("cnode_codec", NULL, NULL);
    if (s == NULL)
        return;
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"epmd alive2 req", test_epmd_alive2_req},
        {"epmd alive2 resp", test_epmd_alive2_resp},
        {"epmd port please", test_epmd_port_please},
        {"digest matches erlang:md5", test_digest_matches_erlang},
        {"flags", test_flags},
        {"hs init errors", test_hs_init_errors},
        {"hs send_name layout", test_hs_send_name_layout},
        {"hs pair whole", test_hs_pair_whole},
        {"hs pair byte at a time", test_hs_pair_byte_at_a_time},
        {"hs wrong cookie: acceptor", test_hs_wrong_cookie_acceptor},
        {"hs wrong cookie: initiator", test_hs_wrong_cookie_initiator},
        {"hs acceptor by hand", test_hs_acceptor_by_hand},
        {"hs old send_name + complement", test_hs_old_send_name},
        {"hs statuses", test_hs_statuses},
        {"hs acceptor policy", test_hs_acceptor_policy},
        {"hs missing flags", test_hs_missing_flags},
        {"hs peer name check", test_hs_peer_name_check},
        {"hs bad lengths", test_hs_bad_lengths},
        {"hs leaves stream bytes", test_hs_leaves_stream_bytes},
        {"hs truncated and mutated", test_hs_truncated_and_mutated},
        {"hs garbage", test_hs_garbage},
        {"frames every split", test_frames_every_split},
        {"frame cut details", test_frame_cut_details},
        {"ctrl erlang sends", test_ctrl_erlang_sends},
        {"ctrl erlang signals", test_ctrl_erlang_signals},
        {"ctrl erlang spawn and others", test_ctrl_erlang_spawn_and_others},
        {"ctrl invalid", test_ctrl_invalid},
        {"etf skip", test_etf_skip},
        {"ctrl truncated and mutated", test_ctrl_truncated_and_mutated},
        {"ctrl garbage", test_ctrl_garbage},
        {"encode round trips", test_encode_round_trips},
        {"pids and refs encoded as ei does", test_encode_pids_refs_as_ei},
        {"64 MiB message", test_big_message},
    };
    for (size_t i = 0; i < ARRAY_LEN(tests); i++)
        if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL)
            return; /* CU_get_error() fails the run */
}

int main(void)
{
    return run_suites(add);
}
