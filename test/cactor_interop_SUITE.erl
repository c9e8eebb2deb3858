%% The interop surface of a C node, end to end: one cactor-node started
%% with cactor:start_node/2 (with the example plugin and the test probe
%% actor), and this CT node talking to its actors as to Erlang processes.
%%
%% Actors of cactor-node used here: echo ({Pid, T} -> {echo, T}; calls
%% answer Req), cactor_probe (--probe: monitors/links Erlang processes and
%% reports), and the example plugin's kv (gen_server-style store), caller
%% (a C actor calling an Erlang gen_server) and example:add/2,
%% example:reverse/1.
-module(cactor_interop_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(T, 10000).
-import(cactor_test_lib, [no_msg/2, whereis_c/2, echo/3, recv/2]).

suite() ->
    [{timetrap, {seconds, 60}}].

all() ->
    [{group, terms}, {group, names}, {group, gen_server}, {group, links},
     {group, monitors}, {group, restarts}, {group, rpc}, big_message, deep_terms].

groups() ->
    [{terms, [parallel],
      [atoms, utf8_atoms, small_integers, big_integers, floats, binaries, sub_binaries,
       bitstrings, lists, improper_lists, tuples, maps, pids, refs, ports, funs,
       mixed_deep]},
     {names, [], [send_by_name, send_to_unknown_name, whereis_names, erlang_name_from_c]},
     {gen_server, [], [call_echo, call_by_pid, call_unknown_name, cast_echo, cast_count,
                       call_kv, cast_kv, multi_call_kv, global_name, sys_and_stop_kv, c_calls_erlang, c_calls_erlang_errors,
                       c_calls_erlang_by_name, c_rpc_calls, echo_sys]},
     {links, [], [erlang_links_c_trap, erlang_links_c_no_trap, c_links_erlang,
                  unlink_c, disconnect_node_both_sides]},
     {monitors, [], [monitor_by_pid, monitor_by_name, monitor_unknown_name,
                     monitor_dead_pid, demonitor, c_monitors_erlang,
                     c_monitors_erlang_by_name]},
     {restarts, [], [supervisor_restarts_echo, supervisor_restarts_kv,
                      supervisor_module, supervisor_module_pool, supervisor_sys]},
     {rpc, [], [ping, rpc_builtins, rpc_info, rpc_undef, erpc_builtins, erpc_undef,
                rpc_plugin, erpc_plugin, rpc_plugin_badarg, rpc_many, casts, spawns,
                rpc_deferred, rpc_deferred_watch_dies, rpc_deferred_timeout,
                rpc_deferred_to_erlang, process_info_items, erpc_batches]}].

init_per_suite(Config) ->
    {ok, Node} = cactor:start_node(interop, #{threads => 2,
                                              plugins => [cactor_test_lib:plugin()],
                                              extra_args => ["--probe"]}),
    ct:log("C node ~p: ~p", [Node, cactor:node_info(Node)]),
    [{cnode, Node} | Config].

end_per_suite(Config) ->
    ok = cactor:stop_node(?config(cnode, Config)),
    ok.

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    process_flag(trap_exit, false),
    cactor_test_lib:flush(),
    ok.

cn(Config) -> ?config(cnode, Config).

%% Every term comes back from echo exactly as sent.
roundtrip(Config, Terms) ->
    N = cn(Config),
    [begin
         Got = echo(N, T, ?T),
         case Got =:= T andalso term_to_binary(Got) =:= term_to_binary(T) of
             true -> ok;
             false -> ct:fail({changed, T, Got})
         end
     end || T <- Terms],
    ok.

%% ---- terms ----

atoms(Config) ->
    roundtrip(Config, [a, 'Quoted atom', '', true, false, undefined, nil, '[]',
                       list_to_atom(lists:duplicate(255, $x)),
                       list_to_atom([0, 1, 255])]).

utf8_atoms(Config) ->
    roundtrip(Config, ['héllo', '日本語', 'ünïcödé', '😀',
                       list_to_atom(lists:duplicate(255, $é)),
                       list_to_atom(lists:duplicate(255, 16#1F600)),
                       {'Ωmega', ['ä', 'ß']}]).

small_integers(Config) ->
    roundtrip(Config, [0, 1, -1, 255, 256, -256, 65535, 16#7FFFFFF, -16#8000000,
                       16#7FFFFFFF, -16#80000000]).

big_integers(Config) ->
    roundtrip(Config, [16#80000000, -16#80000001, 1 bsl 63, (1 bsl 64) - 1, 1 bsl 64,
                       -(1 bsl 64), 1 bsl 1000, -(1 bsl 2040),
                       %% LARGE_BIG_EXT: more than 255 bytes of digits
                       1 bsl 2100, -((1 bsl 8000) + 12345)]).

floats(Config) ->
    roundtrip(Config, [0.0, 1.5, -2.25, math:pi(), 1.0e-300, -4.9406564584124654e-324,
                       1.7976931348623157e308, 123456789.123456789]).

binaries(Config) ->
    roundtrip(Config, [<<>>, <<"abc">>, <<0, 255, 0>>, list_to_binary(lists:seq(0, 255)),
                       crypto:strong_rand_bytes(1 bsl 20)]).

sub_binaries(Config) ->
    Big = crypto:strong_rand_bytes(4096),
    <<_:7/binary, Mid:100/binary, _/binary>> = Big,
    Part = binary:part(Big, 1000, 3000),
    {_, Tail} = split_binary(Big, 4000),
    %% a sub-binary is sent as the bytes it spans
    ?assertEqual(100, byte_size(Mid)),
    roundtrip(Config, [Mid, Part, Tail, [Mid, Part], {Mid, Tail}]).

bitstrings(Config) ->
    <<_:3, Odd/bitstring>> = <<"hello">>,
    ?assertEqual(37, bit_size(Odd)),
    roundtrip(Config, [<<1:1>>, <<5:3>>, <<"abc", 3:2>>, Odd,
                       <<(crypto:strong_rand_bytes(1000))/binary, 127:7>>, {<<0:7>>, [<<1:15>>]}]).

lists(Config) ->
    roundtrip(Config, [[], "abc", "", [1, 2, 3], [256, 1000], [a, "b", <<"c">>, 1.0],
                       lists:seq(1, 70000), lists:duplicate(70000, $x),
                       [[[]]], ["nested", ["lists", ['of', [lists]]]],
                       unicode:characters_to_list(<<"日本語"/utf8>>)]).

improper_lists(Config) ->
    roundtrip(Config, [[a | b], [1, 2 | 3], [1 | <<"tail">>], [[] | []], [x | {y}],
                       ["str" | 4.5], [a, b | #{k => v}]]).

tuples(Config) ->
    roundtrip(Config, [{}, {a}, {a, b, c}, {{}, {{}}}, list_to_tuple(lists:seq(1, 255)),
                       list_to_tuple(lists:seq(1, 256)), list_to_tuple(lists:seq(1, 70000))]).

maps(Config) ->
    Large = maps:from_list([{K, integer_to_binary(K)} || K <- lists:seq(1, 1000)]),
    roundtrip(Config, [#{}, #{a => 1}, #{<<"k">> => [v], 1 => 2.0, {t} => #{n => m}},
                       #{#{key => map} => [nested, #{}]}, Large,
                       maps:from_list([{I, I} || I <- lists:seq(1, 33)])]).

pids(Config) ->
    N = cn(Config),
    Dead = spawn(fun() -> ok end),
    Echo = whereis_c(N, echo),
    ?assert(is_pid(Echo)),
    ?assertEqual(N, node(Echo)),
    roundtrip(Config, [self(), Dead, Echo, whereis(init), [self(), {Echo}]]),
    %% a pid that went through the C node still reaches its process
    Me = echo(N, self(), ?T),
    Me ! {hello, me},
    receive {hello, me} -> ok after ?T -> ct:fail(pid_unusable) end.

refs(Config) ->
    Alias = alias(),
    R = make_ref(),
    roundtrip(Config, [R, Alias, erlang:monitor(process, self()),
                       [make_ref() || _ <- lists:seq(1, 10)]]),
    unalias(Alias),
    ?assertEqual(R, echo(cn(Config), R, ?T)).

ports(Config) ->
    Port = open_port({spawn, "cat"}, []),
    try
        roundtrip(Config, [Port, hd(erlang:ports()), [Port, {Port}]]),
        Back = echo(cn(Config), Port, ?T),
        ?assertEqual(self(), proplists:get_value(connected, erlang:port_info(Back)))
    after
        port_close(Port)
    end.

funs(Config) ->
    X = rand:uniform(1000),
    Closure = fun(Y) -> X + Y end,
    Local = fun() -> ok end,
    Ext = fun lists:map/2,
    roundtrip(Config, [Local, Closure, Ext, fun erlang:node/0, [Closure, {Ext}]]),
    %% they still work after the trip
    F = echo(cn(Config), Closure, ?T),
    ?assertEqual(X + 1, F(1)),
    G = echo(cn(Config), Ext, ?T),
    ?assertEqual([2, 4], G(fun(E) -> 2 * E end, [1, 2])).

mixed_deep(Config) ->
    Deep = lists:foldl(fun(I, Acc) -> {I, [Acc], #{I => <<I>>}} end, leaf, lists:seq(1, 200)),
    roundtrip(Config, [Deep, {self(), make_ref(), 'ä', -1 bsl 70, 2.5, <<1:1>>, [a | b],
                              #{fun() -> ok end => hd(erlang:ports())}}]).

%% ---- names ----

send_by_name(Config) ->
    N = cn(Config),
    {echo, N} ! {self(), by_name},
    receive {echo, by_name} -> ok after ?T -> ct:fail(no_echo) end,
    %% erlang:send/2 and cactor:send/3 too
    erlang:send({echo, N}, {self(), by_send}),
    receive {echo, by_send} -> ok after ?T -> ct:fail(no_echo) end,
    cactor:send(N, echo, {self(), by_cactor}),
    receive {echo, by_cactor} -> ok after ?T -> ct:fail(no_echo) end.

send_to_unknown_name(Config) ->
    N = cn(Config),
    %% dropped, as in Erlang; the node goes on
    {no_such_actor, N} ! {self(), lost},
    no_msg(fun(_) -> true end, 300),
    ?assertEqual(still, echo(N, still, ?T)).

whereis_names(Config) ->
    N = cn(Config),
    [begin
         P = whereis_c(N, Name),
         ?assert(is_pid(P), Name),
         ?assertEqual(N, node(P))
     end || Name <- [echo, kv, caller, cactor_probe]],
    ?assertEqual(undefined, whereis_c(N, no_such_actor)),
    %% the probe's own view of the name agrees
    {cactor_probe, N} ! {whereis, echo, self()},
    P = whereis_c(N, echo),
    receive {whereis, echo, P} -> ok after ?T -> ct:fail(no_whereis) end.

%% A C actor replies to an Erlang process registered under a name: the
%% caller actor calls a registered Erlang gen_server by pid it was given.
erlang_name_from_c(Config) ->
    N = cn(Config),
    {ok, S} = cactor_test_server:start(),
    true = register(cactor_named_server, S),
    {caller, N} ! {call, whereis(cactor_named_server), {double, 21}, self()},
    Me = node(),
    receive {called, {doubled, 42, N}} -> ok;
            {called, {doubled, 42, Me}} -> ct:fail(caller_was_local)
    after ?T -> ct:fail(no_reply)
    end,
    gen_server:stop(S).

%% ---- gen_server ----

call_echo(Config) ->
    N = cn(Config),
    ?assertEqual({ping, 1}, gen_server:call({echo, N}, {ping, 1})),
    ?assertEqual(#{a => [1]}, gen_server:call({echo, N}, #{a => [1]}, ?T)),
    ?assertEqual('ä', cactor:call(N, echo, 'ä')),
    ?assertEqual(<<"x">>, cactor:call(N, echo, <<"x">>, ?T)).

call_by_pid(Config) ->
    N = cn(Config),
    P = whereis_c(N, echo),
    ?assertEqual(hi, gen_server:call(P, hi, ?T)),
    %% gen:call's alias and monitor are cleaned up: nothing left behind
    no_msg(fun(_) -> true end, 200).

call_unknown_name(Config) ->
    N = cn(Config),
    ?assertExit({noproc, _}, gen_server:call({no_such_actor, N}, hi, ?T)).

cast_echo(Config) ->
    N = cn(Config),
    P = whereis_c(N, echo),
    ok = gen_server:cast({echo, N}, {anything, 1}),
    ok = cactor:cast(N, echo, other),
    %% echo ignores casts it does not know, and survives them
    ?assertEqual(after_cast, gen_server:call({echo, N}, after_cast, ?T)),
    ?assertEqual(P, whereis_c(N, echo)).

cast_count(Config) ->
    N = cn(Config),
    {echo, N} ! {report, self()},
    receive {count, _} -> ok after ?T -> ct:fail(no_reset) end,
    [{echo, N} ! {cast, I} || I <- lists:seq(1, 1000)],
    {echo, N} ! {report, self()},
    receive {count, C} -> ?assertEqual(1000, C) after ?T -> ct:fail(no_count) end.

call_kv(Config) ->
    N = cn(Config),
    ok = gen_server:call({kv, N}, {put, colour, <<"blue">>}, ?T),
    ok = gen_server:call({kv, N}, {put, {key, 2}, #{v => [1, 2]}}, ?T),
    ?assertEqual({ok, <<"blue">>}, gen_server:call({kv, N}, {get, colour}, ?T)),
    ?assertEqual({ok, #{v => [1, 2]}}, gen_server:call({kv, N}, {get, {key, 2}}, ?T)),
    ?assertEqual(not_found, gen_server:call({kv, N}, {get, nope}, ?T)).

cast_kv(Config) ->
    N = cn(Config),
    ok = gen_server:cast({kv, N}, {put, cast_key, 42}),
    %% per sender, messages arrive in order: the call sees the cast
    ?assertEqual({ok, 42}, gen_server:call({kv, N}, {get, cast_key}, ?T)).

%% gen_server:multi_call and abcast (their tag is {Ref, Node}, not a bare
%% ref or alias), with a node that is not there.
multi_call_kv(Config) ->
    N = cn(Config),
    ?assertEqual({[{N, ok}], []}, gen_server:multi_call([N], kv, {put, multi, 1}, ?T)),
    ?assertEqual({[{N, {ok, 1}}], [nonode@nohost]},
                 gen_server:multi_call([N, nonode@nohost], kv, {get, multi}, ?T)),
    abcast = gen_server:abcast([N], kv, {put, multi, 2}),
    ?assertEqual({ok, 2}, gen_server:call({kv, N}, {get, multi}, ?T)).

%% A C actor registered in global: found, called through it, and gone
%% from it when it dies (global links to it).
global_name(Config) ->
    N = cn(Config),
    Echo = whereis_c(N, echo),
    yes = global:register_name(cactor_echo, Echo),
    ?assertEqual(Echo, global:whereis_name(cactor_echo)),
    ?assertEqual(via, gen_server:call({global, cactor_echo}, via, ?T)),
    exit(Echo, kill),
    ok = cactor_test_lib:wait_until(fun() -> global:whereis_name(cactor_echo) =:= undefined end, ?T),
    %% and echo is back under its local name (its supervisor)
    ok = cactor_test_lib:wait_until(
           fun() -> New = whereis_c(N, echo), is_pid(New) andalso New =/= Echo end, ?T).

%% sys on a C gen_server: get_state and get_status (kv has a format_state),
%% suspend and resume, replace_state refused at once (C cannot run the
%% fun); gen_server:stop stops it with its reason, and its supervisor
%% brings it back.
sys_and_stop_kv(Config) ->
    N = cn(Config),
    Old = whereis_c(N, kv),
    ok = gen_server:call({kv, N}, {put, sys_a, 1}, ?T),
    %% sys:get_state and sys:get_status, through kv's format_state
    State = sys:get_state({kv, N}, ?T),
    ?assertEqual(1, proplists:get_value(sys_a, State)),
    {status, Old, {module, gen_server}, [[], running, Old, [], Misc]} =
        sys:get_status({kv, N}, ?T),
    ?assertMatch([{header, "Status for generic server kv"},
                  {data, [{"Status", running}, {"Parent", Old}, {"Logged events", []}]},
                  {data, [{"State", State}]}], Misc),
    %% suspended: a cast and a call wait, sys still answers; resumed:
    %% both handled, the cast first
    ok = sys:suspend({kv, N}, ?T),
    ok = gen_server:cast({kv, N}, {put, sys_a, 2}),
    Self = self(),
    Caller = spawn_link(fun() -> Self ! {got, gen_server:call({kv, N}, {get, sys_a}, ?T)} end),
    ?assertEqual(1, proplists:get_value(sys_a, sys:get_state({kv, N}, ?T))),
    {status, Old, _, [_, suspended | _]} = sys:get_status({kv, N}, ?T),
    receive {got, Early} -> ct:fail({answered_while_suspended, Early})
    after 300 -> ok
    end,
    ok = sys:resume({kv, N}, ?T),
    receive {got, Got} -> ?assertEqual({ok, 2}, Got)
    after ?T -> ct:fail({no_reply_after_resume, Caller})
    end,
    ?assertError({not_supported, {replace_state, _}},
                 sys:replace_state({kv, N}, fun(S) -> S end, ?T)),
    ?assertEqual(ok, gen_server:stop({kv, N}, {shutdown, asked}, ?T)),
    New = wait_new(N, kv, Old),
    ?assertEqual(not_found, gen_server:call(New, {get, colour}, ?T)),
    ?assertEqual(ok, gen_server:stop(New)),
    _ = wait_new(N, kv, New).

%% The other direction: a C actor (the plugin's caller) calls an Erlang
%% gen_server with ca_gen_call, without blocking.
c_calls_erlang(Config) ->
    N = cn(Config),
    {ok, S} = cactor_test_server:start(),
    [begin
         {caller, N} ! {call, S, {double, I}, self()},
         receive {called, R} -> ?assertEqual({doubled, 2 * I, N}, R)
         after ?T -> ct:fail({no_reply, I})
         end
     end || I <- [1, 2, 1 bsl 70]],
    ?assertEqual(3, gen_server:call(S, calls)),
    gen_server:stop(S).

c_calls_erlang_errors(Config) ->
    N = cn(Config),
    %% a dead server: noproc
    {ok, S} = cactor_test_server:start(),
    gen_server:stop(S),
    {caller, N} ! {call, S, {double, 1}, self()},
    receive {call_failed, noproc} -> ok;
            Other -> ct:fail({unexpected, Other})
    after ?T -> ct:fail(no_answer)
    end,
    %% a server that never answers: the C side's timeout (5 s)
    {ok, S2} = cactor_test_server:start(),
    {caller, N} ! {call, S2, silence, self()},
    receive {call_failed, timeout} -> ok;
            Other2 -> ct:fail({unexpected, Other2})
    after ?T -> ct:fail(no_timeout)
    end,
    %% a server that dies during the call: its exit reason
    dies_during_call(N, S2, S2).

%% gen_server:call({Name, Node}, ...) from C (ca_gen_call_name): the
%% reply; a name nobody has: noproc; a server that dies during the call:
%% its reason, from a DOWN that names it {Name, Node}.
c_calls_erlang_by_name(Config) ->
    N = cn(Config),
    {ok, S} = cactor_test_server:start(),
    true = register(ct_doubler, S),
    {caller, N} ! {call, {ct_doubler, node()}, {double, 21}, self()},
    receive {called, R} -> ?assertEqual({doubled, 42, N}, R)
    after ?T -> ct:fail(no_reply)
    end,
    ?assertEqual(1, gen_server:call(S, calls)),
    {caller, N} ! {call, {ct_nobody, node()}, {double, 1}, self()},
    receive {call_failed, noproc} -> ok;
            Other -> ct:fail({unexpected, Other})
    after ?T -> ct:fail(no_noproc)
    end,
    dies_during_call(N, {ct_doubler, node()}, S).

%% rpc:call and rpc:cast from C (ca_rpc_call, ca_rpc_cast): a function on
%% this node, errors as rpc:call gives them, output to this node's console
%% rather than to the C caller, a function of the C node itself, a node
%% nobody runs.
c_rpc_calls(Config) ->
    N = cn(Config),
    Node = node(),
    ?assertEqual({called, [1, 2, 3]}, c_rpc(N, Node, lists, seq, [1, 3])),
    ?assertEqual({called, Node}, c_rpc(N, Node, erlang, node, [])),
    ?assertEqual({called, <<"abc">>}, c_rpc(N, Node, erlang, list_to_binary, ["abc"])),
    {called, {badrpc, {'EXIT', {boom, [_ | _]}}}} = c_rpc(N, Node, erlang, error, [boom]),
    ?assertEqual({called, {badrpc, {'EXIT', bye}}}, c_rpc(N, Node, erlang, exit, [bye])),
    ?assertEqual({called, ball}, c_rpc(N, Node, erlang, throw, [ball])),
    {called, {badrpc, {'EXIT', {undef, [{nomod, nofun, [], _} | _]}}}} =
        c_rpc(N, Node, nomod, nofun, []),
    %% io goes to this node's user, and the call returns
    ?assertEqual({called, ok}, c_rpc(N, Node, io, format, ["c_rpc_calls: hello from C~n"])),
    ?assertEqual({called, 3}, c_rpc(N, N, example, add, [1, 2])),
    ?assertEqual({call_failed, noconnection}, c_rpc(N, 'nobody@127.0.0.1', erlang, node, [])),
    ?assertEqual({call_failed, einval}, c_rpc(N, Node, erlang, node, not_a_list)),
    %% and the caller is still there, answering
    ?assertEqual({called, 6}, c_rpc(N, Node, erlang, '*', [2, 3])),
    %% rpc:cast from C (ca_rpc_cast): run here, and by the C node's own rex
    Self = self(),
    {caller, N} ! {rpc_cast, Node, erlang, send, [Self, cast_from_c], self()},
    receive {cast, ok} -> ok after ?T -> ct:fail(no_cast_sent) end,
    receive cast_from_c -> ok after ?T -> ct:fail(cast_not_run) end,
    {caller, N} ! {rpc_cast, N, example, notify, [Self, cast_on_c], self()},
    receive {cast, ok} -> ok after ?T -> ct:fail(no_cast_sent) end,
    receive cast_on_c -> ok after ?T -> ct:fail(cast_not_run_on_c) end,
    {caller, N} ! {rpc_cast, Node, erlang, send, not_a_list, self()},
    receive {cast, einval} -> ok after ?T -> ct:fail(no_einval) end.

c_rpc(N, Node, M, F, A) ->
    {caller, N} ! {rpc, Node, M, F, A, self()},
    receive {called, _} = R -> R;
            {call_failed, _} = R -> R
    after ?T -> ct:fail({no_answer, M, F, A})
    end.

%% C's caller calls Dest (server S, by pid or name), which dies during the
%% call: the call fails with S's exit reason.
dies_during_call(N, Dest, S) ->
    {caller, N} ! {call, Dest, silence, self()},
    timer:sleep(200),
    exit(S, went_away),
    receive {call_failed, went_away} -> ok;
            Other -> ct:fail({unexpected, Other})
    after ?T -> ct:fail(no_down)
    end.

%% ---- links ----

wait_new(N, Name, Old) ->
    cactor_test_lib:wait_value(fun() ->
                                       case whereis_c(N, Name) of
                                           P when is_pid(P), P =/= Old -> {ok, P};
                                           _ -> no
                                       end
                               end, ?T).

sync(N) ->
    ?assertEqual(sync, echo(N, sync, ?T)).

erlang_links_c_trap(Config) ->
    N = cn(Config),
    process_flag(trap_exit, true),
    Echo = whereis_c(N, echo),
    true = link(Echo),
    sync(N),
    exit(Echo, kill),
    receive {'EXIT', Echo, R} -> ?assertEqual(killed, R) after ?T -> ct:fail(no_exit) end,
    _ = wait_new(N, echo, Echo),
    %% linking a dead C pid: noproc
    true = link(Echo),
    receive {'EXIT', Echo, R2} -> ?assertEqual(noproc, R2) after ?T -> ct:fail(no_noproc) end.

erlang_links_c_no_trap(Config) ->
    N = cn(Config),
    Kv = whereis_c(N, kv),
    Self = self(),
    {P, Ref} = spawn_monitor(fun() -> link(Kv), Self ! linked, timer:sleep(infinity) end),
    receive linked -> ok after ?T -> ct:fail(no_link) end,
    sync(N),
    %% kv crashes on request: the linked Erlang process dies with it
    catch gen_server:call({kv, N}, crash, 2000),
    receive {'DOWN', Ref, process, P, Why} -> ct:log("linked process died: ~p", [Why]),
                                             ?assertNotEqual(normal, Why)
    after ?T -> ct:fail(linked_process_survived)
    end,
    _ = wait_new(N, kv, Kv).

c_links_erlang(Config) ->
    N = cn(Config),
    %% the C probe links to an Erlang process (and traps exits)
    V = spawn(fun() -> receive stop -> exit(bye_from_erlang) end end),
    {cactor_probe, N} ! {link, V, self()},
    receive {linked, V} -> ok after ?T -> ct:fail(no_link) end,
    V ! stop,
    receive {exit, V, R} -> ?assertEqual(bye_from_erlang, R) after ?T -> ct:fail(no_exit) end,
    %% a kill from Erlang reaches the C side as killed
    V2 = spawn(fun() -> timer:sleep(infinity) end),
    {cactor_probe, N} ! {link, V2, self()},
    receive {linked, V2} -> ok after ?T -> ct:fail(no_link) end,
    %% the link is seen by the Erlang side too
    ok = cactor_test_lib:wait_until(
           fun() -> {links, L} = process_info(V2, links), lists:any(fun(X) -> node(X) =:= N end, L) end,
           ?T),
    exit(V2, kill),
    receive {exit, V2, R2} -> ?assertEqual(killed, R2) after ?T -> ct:fail(no_exit) end.

%% erlang:disconnect_node/1, as a test simulates a partition: each side
%% sees noconnection at once, in monitors, links and monitor_node, and a
%% C actor linked to an Erlang process dies of it as an Erlang one would;
%% the next message connects again.
disconnect_node_both_sides(Config) ->
    N = cn(Config),
    process_flag(trap_exit, true),
    Echo = whereis_c(N, echo),
    R = erlang:monitor(process, Echo),
    {ok, K} = supervisor:start_child({kv_pool, N}, []),
    true = link(K),
    V = spawn(fun() -> timer:sleep(infinity) end),
    {cactor_probe, N} ! {monitor, V, self()},
    {cactor_probe, N} ! {link, V, self()},
    {cactor_probe, N} ! {monitor_node, node(), self()},
    receive {linked, V} -> ok after ?T -> ct:fail(no_link) end,
    _ = recv(fun(M) -> M =:= {nodeup, node()} end, ?T),
    true = erlang:disconnect_node(N),
    _ = recv(fun(M) -> M =:= {'DOWN', R, process, Echo, noconnection} end, ?T),
    _ = recv(fun(M) -> M =:= {'EXIT', K, noconnection} end, ?T),
    %% the C side's view comes back over a new connection
    _ = recv(fun(M) -> M =:= {down, V, noconnection} end, ?T),
    _ = recv(fun(M) -> M =:= {exit, V, noconnection} end, ?T),
    _ = recv(fun(M) -> M =:= {nodedown, node()} end, ?T),
    ?assertNot(is_process_alive(V)), % killed by the broken link, not trapping
    ?assertNot(rpc:call(N, erlang, is_process_alive, [K], ?T)),
    ?assertEqual(Echo, whereis_c(N, echo)),
    ?assertEqual(back, gen_server:call(Echo, back, ?T)).

unlink_c(Config) ->
    N = cn(Config),
    process_flag(trap_exit, true),
    Echo = whereis_c(N, echo),
    true = link(Echo),
    sync(N),
    true = unlink(Echo),
    sync(N),
    exit(Echo, kill),
    no_msg(fun({'EXIT', P, _}) -> P =:= Echo; (_) -> false end, 500),
    _ = wait_new(N, echo, Echo).

%% ---- monitors ----

monitor_by_pid(Config) ->
    N = cn(Config),
    Echo = whereis_c(N, echo),
    Ref = erlang:monitor(process, Echo),
    exit(Echo, kill),
    receive {'DOWN', Ref, process, Echo, R} -> ?assertEqual(killed, R)
    after ?T -> ct:fail(no_down)
    end,
    _ = wait_new(N, echo, Echo).

monitor_by_name(Config) ->
    N = cn(Config),
    Echo = whereis_c(N, echo),
    Ref = erlang:monitor(process, {echo, N}),
    exit(Echo, some_reason),
    receive {'DOWN', Ref, process, {echo, N}, R} -> ?assertEqual(some_reason, R)
    after ?T -> ct:fail(no_down)
    end,
    _ = wait_new(N, echo, Echo).

monitor_unknown_name(Config) ->
    N = cn(Config),
    Ref = erlang:monitor(process, {no_such_actor, N}),
    receive {'DOWN', Ref, process, {no_such_actor, N}, R} -> ?assertEqual(noproc, R)
    after ?T -> ct:fail(no_down)
    end.

monitor_dead_pid(Config) ->
    N = cn(Config),
    Echo = whereis_c(N, echo),
    exit(Echo, kill),
    _ = wait_new(N, echo, Echo),
    Ref = erlang:monitor(process, Echo),
    receive {'DOWN', Ref, process, Echo, R} -> ?assertEqual(noproc, R)
    after ?T -> ct:fail(no_down)
    end.

demonitor(Config) ->
    N = cn(Config),
    Echo = whereis_c(N, echo),
    Ref = erlang:monitor(process, Echo),
    true = erlang:demonitor(Ref, [flush]),
    sync(N),
    exit(Echo, kill),
    no_msg(fun({'DOWN', R, _, _, _}) -> R =:= Ref; (_) -> false end, 500),
    _ = wait_new(N, echo, Echo).

c_monitors_erlang(Config) ->
    N = cn(Config),
    V = spawn(fun() -> receive stop -> exit({shutdown, from_erlang}) end end),
    {cactor_probe, N} ! {monitor, V, self()},
    receive {monitoring, V} -> ok after ?T -> ct:fail(no_monitoring) end,
    V ! stop,
    receive {down, V, R} -> ?assertEqual({shutdown, from_erlang}, R)
    after ?T -> ct:fail(no_down)
    end,
    %% a dead process: noproc
    {cactor_probe, N} ! {monitor, V, self()},
    receive {down, V, R2} -> ?assertEqual(noproc, R2)
    after ?T -> ct:fail(no_noproc)
    end.

%% erlang:monitor(process, {Name, Node}) from C (ca_monitor_name): the
%% DOWN names {Name, Node}; nothing registered: noproc at once.
c_monitors_erlang_by_name(Config) ->
    N = cn(Config),
    V = spawn(fun() -> receive stop -> exit({shutdown, by_name}) end end),
    true = register(ct_watched, V),
    Me = node(),
    {cactor_probe, N} ! {monitor_name, ct_watched, Me, self()},
    receive {monitoring_name, ct_watched, Me, ok} -> ok after ?T -> ct:fail(no_monitoring) end,
    V ! stop,
    receive {down, {ct_watched, Me}, R} -> ?assertEqual({shutdown, by_name}, R)
    after ?T -> ct:fail(no_down)
    end,
    {cactor_probe, N} ! {monitor_name, ct_watched, Me, self()},
    receive {down, {ct_watched, Me}, R2} -> ?assertEqual(noproc, R2)
    after ?T -> ct:fail(no_noproc)
    end.

%% ---- supervisor restarts seen from Erlang ----

supervisor_restarts_echo(Config) ->
    N = cn(Config),
    #{restarts := R0} = rpc:call(N, cactor, info, [], ?T),
    Old = whereis_c(N, echo),
    exit(Old, kill),
    New = wait_new(N, echo, Old),
    ?assertEqual(N, node(New)),
    ?assertEqual(back, gen_server:call({echo, N}, back, ?T)),
    ?assertEqual(back_by_pid, gen_server:call(New, back_by_pid, ?T)),
    #{restarts := R1} = rpc:call(N, cactor, info, [], ?T),
    ?assert(R1 > R0, {R0, R1}).

supervisor_restarts_kv(Config) ->
    N = cn(Config),
    ok = gen_server:call({kv, N}, {put, k, v}, ?T),
    Old = whereis_c(N, kv),
    Ref = erlang:monitor(process, Old),
    ?assertExit(_, gen_server:call({kv, N}, crash, ?T)),
    receive {'DOWN', Ref, process, Old, Why} -> ct:log("kv exited: ~p", [Why])
    after ?T -> ct:fail(no_down)
    end,
    _ = wait_new(N, kv, Old),
    %% a new incarnation starts empty
    ?assertEqual(not_found, gen_server:call({kv, N}, {get, k}, ?T)).

%% Erlang's supervisor module on the C node's root supervisor.
supervisor_module(Config) ->
    N = cn(Config),
    Sup = {cactor_sup, N},
    Kids = supervisor:which_children(Sup),
    ct:log("which_children: ~p", [Kids]),
    Echo = whereis_c(N, echo),
    ?assertEqual({echo, Echo, worker, [echo]}, lists:keyfind(echo, 1, Kids)),
    ?assertMatch({kv, P, worker, [kv]} when is_pid(P), lists:keyfind(kv, 1, Kids)),
    ?assertMatch({kv_pool, P, supervisor, [supervisor]} when is_pid(P),
                 lists:keyfind(kv_pool, 1, Kids)),
    Counts = supervisor:count_children(Sup),
    ?assertEqual([specs, active, supervisors, workers], [K || {K, _} <- Counts]),
    ?assertEqual(length(Kids), proplists:get_value(specs, Counts)),
    ?assertEqual(1, proplists:get_value(supervisors, Counts)),
    ?assertEqual({error, running}, supervisor:restart_child(Sup, echo)),
    ?assertEqual({error, running}, supervisor:delete_child(Sup, echo)),
    ?assertEqual({error, not_found}, supervisor:terminate_child(Sup, nobody)),
    ?assertEqual({error, not_found}, supervisor:restart_child(Sup, "echo")),
    ?assertMatch({error, {not_supported, {start_child, _}}},
                 supervisor:start_child(Sup, #{id => x, start => {m, f, []}})),
    %% a C child's spec, in OTP's shape: start names the C behaviour
    {ok, EchoSpec} = supervisor:get_childspec(Sup, echo),
    ?assertEqual(#{id => echo, start => {echo, start_link, []}, restart => permanent,
                   significant => false, shutdown => 5000, type => worker, modules => [echo]},
                 EchoSpec),
    ?assertEqual(ok, supervisor:check_childspecs([EchoSpec])),
    ?assertMatch({ok, #{id := kv_pool, type := supervisor, shutdown := infinity}},
                 supervisor:get_childspec(Sup, kv_pool)),
    ?assertEqual({error, not_found}, supervisor:get_childspec(Sup, nobody)),
    ?assertEqual({error, not_found}, supervisor:get_childspec(Sup, Echo)),
    %% stopped and started again by id
    Caller = whereis_c(N, caller),
    Ref = erlang:monitor(process, Caller),
    ?assertEqual(ok, supervisor:terminate_child(Sup, caller)),
    receive {'DOWN', Ref, process, Caller, shutdown} -> ok after ?T -> ct:fail(no_down) end,
    ?assertEqual({caller, undefined, worker, [caller]},
                 lists:keyfind(caller, 1, supervisor:which_children(Sup))),
    {ok, Caller2} = supervisor:restart_child(Sup, caller),
    ?assertEqual(Caller2, whereis_c(N, caller)),
    ?assertEqual(N, node(Caller2)).

%% A simple_one_for_one pool of C gen_servers, grown and shrunk from Erlang.
supervisor_module_pool(Config) ->
    N = cn(Config),
    Pool = {kv_pool, N},
    {ok, K1} = supervisor:start_child(Pool, []),
    {ok, K2} = supervisor:start_child(Pool, []),
    ?assertEqual(N, node(K1)),
    ok = gen_server:call(K1, {put, a, 1}, ?T),
    ?assertEqual({ok, 1}, gen_server:call(K1, {get, a}, ?T)),
    ?assertEqual(not_found, gen_server:call(K2, {get, a}, ?T)),
    ?assertEqual(lists:sort([{undefined, K, worker, [kv]} || K <- [K1, K2]]),
                 lists:sort(supervisor:which_children(Pool))),
    ?assertEqual([{specs, 1}, {active, 2}, {supervisors, 0}, {workers, 2}],
                 supervisor:count_children(Pool)),
    ?assertMatch({error, {not_supported, _}}, supervisor:start_child(Pool, [extra])),
    ?assertEqual({error, simple_one_for_one}, supervisor:terminate_child(Pool, kv)),
    ?assertEqual({error, simple_one_for_one}, supervisor:restart_child(Pool, kv)),
    %% the template's spec, by a child's pid or by the template's id
    {ok, Tmpl} = supervisor:get_childspec(Pool, K1),
    ?assertMatch(#{id := kv, start := {kv, start_link, []}, modules := [kv]}, Tmpl),
    ?assertEqual({ok, Tmpl}, supervisor:get_childspec(Pool, kv)),
    Ref = erlang:monitor(process, K1),
    ?assertEqual(ok, supervisor:terminate_child(Pool, K1)),
    receive {'DOWN', Ref, process, K1, shutdown} -> ok after ?T -> ct:fail(no_down) end,
    ?assertEqual({error, not_found}, supervisor:terminate_child(Pool, K1)),
    ?assertEqual([{undefined, K2, worker, [kv]}], supervisor:which_children(Pool)),
    ?assertEqual(ok, supervisor:terminate_child(Pool, K2)),
    ?assertEqual([], supervisor:which_children(Pool)).

%% sys on a C supervisor: get_state and get_status show its flags and
%% children; gen_server:stop stops its children, then it, with the reason
%% given (and its own supervisor starts it again); the rest of sys is
%% refused at once instead of timing out.
supervisor_sys(Config) ->
    N = cn(Config),
    Pool = whereis_c(N, kv_pool),
    {ok, K} = supervisor:start_child(Pool, []),
    KRef = erlang:monitor(process, K),
    PRef = erlang:monitor(process, Pool),
    ?assertMatch(#{strategy := simple_one_for_one, intensity := 10, period_ms := 5000,
                   children := 1, restarts := _}, sys:get_state(Pool, ?T)),
    {status, Pool, {module, gen_server}, [_, running, _, _, Misc]} = sys:get_status(Pool, ?T),
    ?assertEqual("Status for generic server kv_pool", proplists:get_value(header, Misc)),
    ?assertMatch([{"State", #{children := 1}}], lists:last(proplists:get_all_values(data, Misc))),
    ?assertEqual({error, {not_supported, suspend}}, sys:suspend(Pool, ?T)),
    ?assertEqual(ok, gen_server:stop(Pool, {shutdown, by_test}, ?T)),
    receive {'DOWN', KRef, process, K, R1} -> ?assertEqual(shutdown, R1)
    after ?T -> ct:fail(child_not_stopped)
    end,
    receive {'DOWN', PRef, process, Pool, R2} -> ?assertEqual({shutdown, by_test}, R2)
    after ?T -> ct:fail(pool_not_stopped)
    end,
    New = wait_new(N, kv_pool, Pool),
    ?assertEqual([], supervisor:which_children(New)).

%% ---- ping, rpc, erpc ----

ping(Config) ->
    N = cn(Config),
    ?assertEqual(pong, net_adm:ping(N)),
    ?assertEqual(pong, cactor:ping(N)),
    ?assertEqual(pang, net_adm:ping('no_such_cnode@127.0.0.1')).

rpc_builtins(Config) ->
    N = cn(Config),
    ?assertEqual(N, rpc:call(N, erlang, node, [], ?T)),
    Echo = rpc:call(N, erlang, whereis, [echo], ?T),
    ?assert(is_pid(Echo)),
    ?assertEqual(N, node(Echo)),
    ?assertEqual(hi, gen_server:call(Echo, hi, ?T)),
    ?assertEqual(undefined, rpc:call(N, erlang, whereis, [nobody_here], ?T)),
    Names = rpc:call(N, erlang, registered, [], ?T),
    ?assertEqual([], [echo, net_kernel, rex, kv] -- Names),
    ?assert(rpc:call(N, erlang, is_process_alive, [Echo], ?T)),
    {Gone, R} = spawn_monitor(N, erlang, node, []),
    receive {'DOWN', R, process, Gone, normal} -> ok after ?T -> ct:fail(no_down) end,
    ?assertNot(rpc:call(N, erlang, is_process_alive, [Gone], ?T)),
    ?assertMatch({message_queue_len, L} when is_integer(L),
                 rpc:call(N, erlang, process_info, [Echo, message_queue_len], ?T)),
    ?assertMatch([{registered_name, echo}, {message_queue_len, _}],
                 rpc:call(N, erlang, process_info, [Echo, [registered_name, message_queue_len]], ?T)),
    ?assertEqual(undefined, rpc:call(N, erlang, process_info, [Gone, message_queue_len], ?T)),
    ?assertMatch([{registered_name, echo}, {message_queue_len, Q}, {links, _}, {monitors, _},
                  {monitored_by, _}, {trap_exit, false}] when is_integer(Q),
                 rpc:call(N, erlang, process_info, [Echo], ?T)),
    {ok, Unnamed} = supervisor:start_child({kv_pool, N}, []),
    ?assertEqual([message_queue_len, links, monitors, monitored_by, trap_exit],
                 [K || {K, _} <- rpc:call(N, erlang, process_info, [Unnamed], ?T)]),
    %% processes/0: the live actors, named or not, each once
    Procs = rpc:call(N, erlang, processes, [], ?T),
    ?assertEqual([N], lists:usort([node(P) || P <- Procs])),
    ?assertEqual(length(Procs), length(lists:usort(Procs))),
    Named = [rpc:call(N, erlang, whereis, [Nm], ?T) || Nm <- Names],
    ?assertEqual([], lists:usort([Unnamed | Named]) -- Procs),
    ?assertNot(lists:member(Gone, Procs)),
    ok = supervisor:terminate_child({kv_pool, N}, Unnamed),
    ?assertNot(lists:member(Unnamed, rpc:call(N, erlang, processes, [], ?T))),
    ?assertEqual(undefined, rpc:call(N, erlang, process_info, [Gone], ?T)),
    ?assertMatch({badrpc, _}, rpc:call(N, erlang, process_info, [self()], ?T)),
    ?assertMatch({badrpc, _}, rpc:call(N, erlang, process_info, [Echo, heap_size], ?T)),
    ?assertMatch({badrpc, _}, rpc:call(N, erlang, process_info, [Echo, [links, heap_size]], ?T)),
    ?assertMatch({badrpc, _}, rpc:call(N, erlang, process_info, [Echo, '$all'], ?T)),
    ?assertMatch({badrpc, _}, rpc:call(N, erlang, process_info, [Echo, [links | trap_exit]], ?T)),
    ?assertEqual([], rpc:call(N, erlang, process_info, [Echo, []], ?T)),
    %% a pid of this node is not one of the C node's
    ?assertMatch({badrpc, _}, rpc:call(N, erlang, is_process_alive, [self()], ?T)).

rpc_info(Config) ->
    N = cn(Config),
    Info = rpc:call(N, cactor, info, [], ?T),
    ct:log("cactor:info() on ~p: ~p", [N, Info]),
    ?assert(is_map(Info)),
    ?assertMatch(#{node := N, schedulers := 2}, Info),
    ?assert(lists:member(node(), maps:get(nodes, Info))),
    [?assert(is_integer(maps:get(K, Info)), K)
     || K <- [actors, restarts, spawned, frames_in, frames_out, batch_waits]],
    %% this very call came in through at least one read
    ?assert(maps:get(reads, Info) > 0),
    %% the registered functions: how often called, how long a call runs
    [rpc:call(N, example, add, [I, I], ?T) || I <- lists:seq(1, 5)],
    #{functions := Fns} = rpc:call(N, cactor, info, [], ?T),
    #{calls := Calls, avg_us := Avg} = maps:get({example, add, 2}, Fns),
    ?assert(Calls >= 5 andalso is_integer(Avg)),
    ?assertMatch(#{calls := _}, maps:get({cactor, info, 0}, Fns)),
    ?assertMatch(#{calls := _}, maps:get({erlang, process_info, 2}, Fns)).

rpc_undef(Config) ->
    N = cn(Config),
    ?assertMatch({badrpc, {'EXIT', {undef, _}}}, rpc:call(N, no_such_module, f, [1], ?T)),
    ?assertMatch({badrpc, {'EXIT', {undef, _}}}, rpc:call(N, erlang, no_such_fun, [], ?T)),
    %% wrong arity is undef as well
    ?assertMatch({badrpc, {'EXIT', {undef, _}}}, rpc:call(N, erlang, node, [x, y], ?T)).

erpc_builtins(Config) ->
    N = cn(Config),
    ?assertEqual(N, erpc:call(N, erlang, node, [], ?T)),
    ?assert(is_pid(erpc:call(N, erlang, whereis, [echo], ?T))),
    ?assertMatch(#{node := N}, erpc:call(N, cactor, info, [], ?T)).

erpc_undef(Config) ->
    N = cn(Config),
    ?assertError({exception, undef, _}, erpc:call(N, no_such_module, f, [], ?T)).

rpc_plugin(Config) ->
    N = cn(Config),
    ?assertEqual(42, rpc:call(N, example, add, [2, 40], ?T)),
    ?assertEqual((1 bsl 40) + 1, rpc:call(N, example, add, [1 bsl 40, 1], ?T)),
    ?assertEqual(<<"cba">>, rpc:call(N, example, reverse, [<<"abc">>], ?T)),
    ?assertEqual(<<>>, rpc:call(N, example, reverse, [<<>>], ?T)).

erpc_plugin(Config) ->
    N = cn(Config),
    ?assertEqual(-3, erpc:call(N, example, add, [-5, 2], ?T)),
    Bin = crypto:strong_rand_bytes(100000),
    Rev = list_to_binary(lists:reverse(binary_to_list(Bin))),
    ?assertEqual(Rev, erpc:call(N, example, reverse, [Bin], ?T)).

rpc_plugin_badarg(Config) ->
    N = cn(Config),
    R = rpc:call(N, example, add, [a, b], ?T),
    ct:log("example:add(a, b): ~p", [R]),
    ?assertMatch({badrpc, {'EXIT', {{error, einval}, _}}}, R),
    ?assertError({exception, {error, einval}, _}, erpc:call(N, example, reverse, [not_a_binary], ?T)),
    %% a function that returns a positive number (no error code) fails too
    ?assertMatch({badrpc, {'EXIT', {{error, einval}, _}}},
                 rpc:call(N, cactor_probe, positive, [], ?T)),
    ?assertMatch({badrpc, {'EXIT', {{error, einval}, _}}},
                 gen_server:call({rex, N}, {call, cactor_probe, positive, [], user}, ?T)),
    ?assertEqual(3, rpc:call(N, example, add, [1, 2], ?T)).

rpc_many(Config) ->
    N = cn(Config),
    Self = self(),
    Pids = [spawn_link(fun() -> Self ! {self(), rpc:call(N, example, add, [I, I], ?T)} end)
            || I <- lists:seq(1, 200)],
    Rs = [receive {P, R} -> R after ?T -> timeout end || P <- Pids],
    ?assertEqual([2 * I || I <- lists:seq(1, 200)], Rs),
    Reqs = [erpc:send_request(N, example, add, [I, 1]) || I <- lists:seq(1, 100)],
    ?assertEqual([I + 1 || I <- lists:seq(1, 100)], [erpc:receive_response(Q, ?T) || Q <- Reqs]).

%% erpc:cast and rpc:cast run the function in an actor of its own; so do
%% erpc:multicast and rpc:abcast's kin.
casts(Config) ->
    N = cn(Config),
    ok = erpc:cast(N, example, notify, [self(), {erpc_cast, 1}]),
    true = rpc:cast(N, example, notify, [self(), {rpc_cast, 2}]),
    ok = erpc:multicast([N], example, notify, [self(), {multicast, 3}]),
    [receive M -> ok after ?T -> ct:fail({no, M}) end
     || M <- [{erpc_cast, 1}, {rpc_cast, 2}, {multicast, 3}]],
    %% a cast that fails is logged there and lost, as in Erlang; the node goes on
    ok = erpc:cast(N, no_such_module, f, []),
    ?assertEqual(3, rpc:call(N, example, add, [1, 2], ?T)).

%% spawn/4 and its kin: the C function in a new actor, which exits normal,
%% or {Reason, Stack} if the function fails (undef included).
spawns(Config) ->
    N = cn(Config),
    P = spawn(N, example, notify, [self(), spawned]),
    ?assertEqual(N, node(P)),
    receive spawned -> ok after ?T -> ct:fail(not_spawned) end,
    {P2, R2} = spawn_monitor(N, example, add, [1, 2]),
    receive {'DOWN', R2, process, P2, normal} -> ok after ?T -> ct:fail(no_down) end,
    {P3, R3} = spawn_monitor(N, example, nope, [x]),
    receive
        {'DOWN', R3, process, P3, Why} ->
            ?assertMatch({undef, [{example, nope, [x], _} | _]}, Why)
    after ?T -> ct:fail(no_undef_down)
    end,
    process_flag(trap_exit, true),
    P4 = spawn_link(N, example, add, [a, b]),
    receive
        {'EXIT', P4, Why4} -> ?assertMatch({{error, einval}, _}, Why4)
    after ?T -> ct:fail(no_exit)
    end,
    %% the reply options of spawn_request are the caller's business
    Ref = spawn_request(N, example, notify, [self(), requested], [monitor]),
    receive {spawn_reply, Ref, ok, P5} -> ?assertEqual(N, node(P5)) after ?T -> ct:fail(no_reply) end,
    receive requested -> ok after ?T -> ct:fail(not_requested) end,
    receive {'DOWN', Ref, process, _, normal} -> ok after ?T -> ct:fail(no_down5) end,
    %% a monitor with options (OTP 24+), here a tag of the caller's
    Ref6 = spawn_request(N, example, add, [1, 1], [{monitor, [{tag, done}]}, {reply, no}]),
    receive {done, Ref6, process, _, normal} -> ok after ?T -> ct:fail(no_tagged_down) end.

%% ---- a 64 MiB message ----

big_message(Config) ->
    N = cn(Config),
    Bin = binary:copy(crypto:strong_rand_bytes(1 bsl 20), 64),
    ?assertEqual(64 * 1024 * 1024, byte_size(Bin)),
    T0 = erlang:monotonic_time(millisecond),
    Tag = make_ref(),
    {echo, N} ! {self(), {Tag, Bin}},
    receive
        {echo, {Tag, Got}} ->
            ?assertEqual(byte_size(Bin), byte_size(Got)),
            ?assert(Got =:= Bin)
    after 50000 -> ct:fail(no_big_echo)
    end,
    ct:log("64 MiB round trip: ~p ms", [erlang:monotonic_time(millisecond) - T0]),
    %% and the node serves small messages after it
    ?assertEqual(small, echo(N, small, ?T)).

%% Terms nested a million deep, as Erlang sends them: echoed back whole,
%% and as the reason of an exit signal that kills a C actor, whose DOWN
%% carries it back (the C side reads them without recursion).
deep_terms(Config) ->
    N = cn(Config),
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 1000000)),
    ?assertEqual(Deep, echo(N, Deep, 30000)),
    {ok, K} = supervisor:start_child({kv_pool, N}, []),
    R = erlang:monitor(process, K),
    exit(K, {deep, Deep}),
    receive {'DOWN', R, process, K, Why} -> ?assert(Why =:= {deep, Deep})
    after 30000 -> ct:fail(no_down)
    end,
    ?assertEqual(small, echo(N, small, ?T)).

%% ---- deferred answers: example:get(Key) asks the kv actor ----

%% A C function that defers its answer (ca_rpc_defer) to an actor that
%% owns the data: every way of calling it gets that actor's reply as the
%% function's value, and no actor is left behind.
rpc_deferred(Config) ->
    N = cn(Config),
    Count = fun() -> length(rpc:call(N, erlang, processes, [], ?T)) end,
    Before = Count(),
    ok = gen_server:call({kv, N}, {put, deferred, <<"v">>}, ?T),
    V = {ok, <<"v">>},
    ?assertEqual(V, rpc:call(N, example, get, [deferred], ?T)),
    ?assertEqual(not_found, rpc:call(N, example, get, [nothing_here], ?T)),
    ?assertEqual(V, erpc:call(N, example, get, [deferred], ?T)),
    ?assertEqual(lists:duplicate(4, {value, V}) ++ [{exit, normal}],
                 deferred_results(N, deferred, fun() -> ok end)),
    Reqs = [erpc:send_request(N, example, get, [deferred]) || _ <- lists:seq(1, 100)],
    ?assertEqual(lists:duplicate(100, V), [erpc:receive_response(Q, ?T) || Q <- Reqs]),
    %% casts: run, answered, gone
    ok = erpc:cast(N, example, get, [deferred]),
    true = rpc:cast(N, example, get, [deferred]),
    gen_server:cast({rex, N}, {cast, example, get, [deferred], user}),
    cactor_test_lib:wait_until(fun() -> Count() =:= Before end, ?T).

%% The actor that is to answer dies first: each call fails with its exit
%% reason, as a gen_server:call to it would have (kv, suspended, holds the
%% handed-on calls until it is killed).
rpc_deferred_watch_dies(Config) ->
    N = cn(Config),
    Kv = whereis_c(N, kv),
    ok = sys:suspend({kv, N}, ?T),
    Kill = fun() -> timer:sleep(300), exit(Kv, kill) end,
    ?assertEqual(lists:duplicate(5, {failed, killed}), deferred_results(N, deferred, Kill)),
    _ = wait_new(N, kv, Kv),
    ?assertEqual(not_found, rpc:call(N, example, get, [deferred], ?T)).

%% No answer within the function's 5 s: each call fails with timeout; the
%% answers kv gives when it resumes find nobody waiting and are dropped.
rpc_deferred_timeout(Config) ->
    N = cn(Config),
    Count = fun() -> length(rpc:call(N, erlang, processes, [], ?T)) end,
    Before = Count(),
    ok = gen_server:call({kv, N}, {put, late, 1}, ?T),
    ok = sys:suspend({kv, N}, ?T),
    ?assertEqual(lists:duplicate(5, {failed, timeout}),
                 deferred_results(N, late, fun() -> ok end)),
    ok = sys:resume({kv, N}, ?T),
    ?assertEqual({ok, 1}, rpc:call(N, example, get, [late], ?T)),
    ?assertEqual(N, gen_server:call({rex, N}, {call, erlang, node, [], user}, ?T)),
    cactor_test_lib:wait_until(fun() -> Count() =:= Before end, ?T).

%% A C function hands the call to an Erlang gen_server (example:call does
%% gen_server:call(Server, Request)): the Erlang server's reply is the
%% value; a C actor's too; a dead server is noproc, as in Erlang.
rpc_deferred_to_erlang(Config) ->
    N = cn(Config),
    {ok, Srv} = cactor_test_server:start(),
    ?assertEqual({doubled, 42, N}, rpc:call(N, example, call, [Srv, {double, 21}], ?T)),
    ?assertEqual({doubled, 8, N}, erpc:call(N, example, call, [Srv, {double, 4}], ?T)),
    ?assertEqual(2, gen_server:call(Srv, calls, ?T)),
    ?assertEqual(hello, rpc:call(N, example, call, [whereis_c(N, echo), hello], ?T)),
    %% a dead C actor is noproc too
    {Gone, GR} = spawn_monitor(N, erlang, node, []),
    receive {'DOWN', GR, process, Gone, normal} -> ok after ?T -> ct:fail(no_down) end,
    ?assertEqual({badrpc, {'EXIT', noproc}}, rpc:call(N, example, call, [Gone, x], ?T)),
    ok = gen_server:stop(Srv),
    ?assertEqual({badrpc, {'EXIT', noproc}}, rpc:call(N, example, call, [Srv, calls], ?T)).

%% example:get(Key) in the five ways Erlang calls a function on a node,
%% all started at once, then Action run, then what each gave: {value, V}
%% or {failed, Reason}, whatever the form says it in (spawn/4 gives only
%% its exit: {exit, normal} when the function returned).
deferred_results(N, Key, Action) ->
    Self = self(),
    Req = {call, example, get, [Key], user},
    Wait = 3 * ?T,
    Erpc = erpc:send_request(N, example, get, [Key]),
    Rpc = spawn_link(fun() -> Self ! {self(), rpc:call(N, example, get, [Key], Wait)} end),
    Rex = gen_server:send_request({rex, N}, Req),
    {rex, N} ! {self(), Req},
    {Sp, SpRef} = spawn_monitor(N, example, get, [Key]),
    Action(),
    R1 = try {value, erpc:receive_response(Erpc, Wait)}
         catch exit:{exception, W1} -> {failed, W1}
         end,
    R2 = receive {Rpc, {badrpc, {'EXIT', W2}}} -> {failed, W2}; {Rpc, V2} -> {value, V2} end,
    R3 = case gen_server:receive_response(Rex, Wait) of
             {reply, {badrpc, {'EXIT', W3}}} -> {failed, W3};
             {reply, V3} -> {value, V3}
         end,
    R4 = receive {rex, {badrpc, {'EXIT', W4}}} -> {failed, W4}; {rex, V4} -> {value, V4}
         after Wait -> no_rex_reply
         end,
    R5 = receive
             {'DOWN', SpRef, process, Sp, normal} -> {exit, normal};
             {'DOWN', SpRef, process, Sp, W5} -> {failed, W5}
         after Wait -> no_down
         end,
    ct:log("deferred ~p: ~p", [Key, [R1, R2, R3, R4, R5]]),
    [R1, R2, R3, R4, R5].

%% process_info's items that a C actor has, answered by the actor itself
%% (links and monitors are its own thread's): links, monitors (by pid and
%% by name), monitored_by, trap_exit; they follow what happens.
process_info_items(Config) ->
    N = cn(Config),
    Info = fun(Pid, Items) -> rpc:call(N, erlang, process_info, [Pid, Items], ?T) end,
    Echo = whereis_c(N, echo),
    Sup = whereis_c(N, cactor_sup),
    ?assertEqual({links, [Sup]}, Info(Echo, links)),
    ?assertEqual({links, [Sup]}, erpc:call(N, erlang, process_info, [Echo, links], ?T)),
    M = erlang:monitor(process, Echo),
    {monitored_by, By} = Info(Echo, monitored_by),
    ?assert(lists:member(self(), By)),
    erlang:demonitor(M),
    cactor_test_lib:wait_until(
      fun() -> {monitored_by, B} = Info(Echo, monitored_by), not lists:member(self(), B) end, ?T),
    %% the probe traps exits; it links to and monitors an Erlang process
    Probe = whereis_c(N, cactor_probe),
    P = spawn(fun() -> receive stop -> ok end end),
    true = register(pi_target, P),
    {cactor_probe, N} ! {link, P, self()},
    receive {linked, P} -> ok after ?T -> ct:fail(not_linked) end,
    {cactor_probe, N} ! {monitor, P, self()},
    receive {monitoring, P} -> ok after ?T -> ct:fail(not_monitoring) end,
    {cactor_probe, N} ! {monitor_name, pi_target, node(), self()},
    receive {monitoring_name, pi_target, _, ok} -> ok after ?T -> ct:fail(not_monitoring_name) end,
    All = rpc:call(N, erlang, process_info, [Probe], ?T),
    ct:log("process_info(cactor_probe): ~p", [All]),
    ?assertEqual({registered_name, cactor_probe}, lists:keyfind(registered_name, 1, All)),
    ?assertEqual({trap_exit, true}, lists:keyfind(trap_exit, 1, All)),
    {links, Links} = lists:keyfind(links, 1, All),
    ?assert(lists:member(P, Links)),
    {monitors, Mons} = lists:keyfind(monitors, 1, All),
    ?assertEqual([], [{process, P}, {process, {pi_target, node()}}] -- Mons),
    ?assert(lists:member(Probe, element(2, erlang:process_info(P, links)))),
    P ! stop,
    cactor_test_lib:wait_until(
      fun() ->
              [{links, L}, {monitors, Ms}] = Info(Probe, [links, monitors]),
              not lists:member(P, L) andalso
                  not lists:member({process, P}, Ms) andalso
                  not lists:member({process, {pi_target, node()}}, Ms)
      end, ?T).

%% echo answers sys as a gen_server would: its state (the casts counted
%% since the last report), its status, gen_server:stop (its supervisor
%% brings it back); suspend it cannot.
echo_sys(Config) ->
    N = cn(Config),
    {echo, N} ! {report, self()},
    receive {count, _} -> ok after ?T -> ct:fail(no_count) end,
    {echo, N} ! {cast, a},
    {echo, N} ! {cast, b},
    ?assertEqual(#{count => 2}, sys:get_state({echo, N}, ?T)),
    Old = whereis_c(N, echo),
    {status, Old, {module, gen_server}, [_, running, _, _, Misc]} = sys:get_status({echo, N}, ?T),
    ?assert(lists:member({data, [{"State", #{count => 2}}]}, Misc)),
    ?assertEqual({error, {not_supported, suspend}}, sys:suspend({echo, N}, ?T)),
    ok = gen_server:stop({echo, N}),
    New = wait_new(N, echo, Old),
    ?assertEqual(back, gen_server:call(New, back, ?T)).

%% A burst of erpc calls is read in batches, as a burst of messages is:
%% spawn requests count as requests (the node waits for more before it
%% reads again; cactor:info's batch_waits).
erpc_batches(Config) ->
    N = cn(Config),
    Waits = fun() -> maps:get(batch_waits, rpc:call(N, cactor, info, [], ?T)) end,
    W0 = Waits(),
    Reqs = [erpc:send_request(N, erlang, node, []) || _ <- lists:seq(1, 3000)],
    ?assertEqual([N], lists:usort([erpc:receive_response(Q, ?T) || Q <- Reqs])),
    W1 = Waits(),
    ct:log("batch waits during 3000 erpc calls: ~p", [W1 - W0]),
    ?assert(W1 > W0).
