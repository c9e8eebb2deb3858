/*
 * Built-in services of a node (net_kernel, rex, spawn) and plugin loading;
 * see services.c.
 */
#ifndef CA_CNODE_SERVICES_H
#define CA_CNODE_SERVICES_H

#include "cactor.h"

/* M:F/Arity of a spawn request as a worker actor: spawn it (args is the
 * request's ETF argument list with version byte, copied), set up what the
 * request asked (monitor, link), then run it. erpc:execute_call/4 and
 * erpc:execute_cast/3 are run as erpc does (the C function is in the
 * arguments); anything else is M:F(Args). The actor is on the sockets'
 * scheduler unless the function's calls take long (services.c). */
int ca__spawn_job(ca_rt *rt, const char *mod, const char *fun, unsigned arity, const char *args,
                  size_t len, ca_pid *pid);
int ca__spawn_job_run(ca_rt *rt, ca_pid pid);

/* The built-in rpc functions (erlang:node/0, erlang:whereis/1,
 * erlang:registered/0, erlang:processes/0, erlang:is_process_alive/1,
 * erlang:process_info/1,2, cactor:info/0) and the service actors to run
 * under the root supervisor (fills up to cap specs, returns how many
 * there are). */
int ca__services_register(ca_rt *rt, ca_node *node);
size_t ca__services_children(ca_child_spec *out, size_t cap);

/* gen.c: sys's requests to a plain actor that answers gen_server calls
 * (cactor-node's echo): terminate (ok, then exit with the reason),
 * get_state and get_status with `state` (a term, no version byte), and
 * {error, {not_supported, Request}} for the rest. 1 if m was one (and is
 * answered), 0 if not. */
int ca__sys_plain(ca_actor *self, const ca_msg *m, const char *name, const char *state, size_t len);

/* Plugins (cactor-node --load). */
ca_plugin *ca__plugin_new(ca_rt *rt);
void ca__plugin_free(ca_plugin *p);
int ca__plugin_load(ca_plugin *p, const char *path, char *err, size_t errcap);
const ca_child_spec *ca__plugin_children(ca_plugin *p, size_t *n);

#endif
