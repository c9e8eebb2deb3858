%% End-to-end tests of cactor-node against a real Erlang node.
%%
%% Run by test/e2e/run.sh, which starts a private epmd and cactor-node
%% (with --probe) and then calls e2e:main/1 with the C node's name on a
%% distributed erl started with a private HOME. Peers (other Erlang nodes)
%% are started with the peer module over standard_io, so that they need no
%% connection back to this node. Every wait is bounded.
-module(e2e).
-export([main/1, peer_echo/2]).
-export([send_echo/1, gen_call/1, cast_report/1, spawn_request_runs/1,
         monitor_by_name_noproc/1, monitor_kill_restart/1, link_kill/1,
         link_dead_noproc/1, wrong_cookie/1, garbage_handshake/1,
         noconnection/1, node_monitor/1, three_nodes/1, big_binary/1,
         ping/1, rpc_builtins/1, rpc_undef/1, erpc_calls/1, erl_call/1,
         plugin_kv/1, plugin_rpc/1, c_calls_erlang/1]).

-define(T, 10000).

main([CNodeStr | Only]) ->
    CN = list_to_atom(CNodeStr),
    All = [send_echo, gen_call, cast_report, spawn_request_runs,
             monitor_by_name_noproc, monitor_kill_restart, link_kill,
             link_dead_noproc, wrong_cookie, garbage_handshake,
             noconnection, node_monitor, three_nodes, big_binary,
             ping, rpc_builtins, rpc_undef, erpc_calls, erl_call,
             plugin_kv, plugin_rpc, c_calls_erlang],
    Tests = case Only of [] -> All; _ -> [list_to_atom(T) || T <- Only] end,
    Results = [run(T, CN) || T <- Tests],
    Failed = [T || {T, R} <- lists:zip(Tests, Results), R =/= ok],
    io:format("e2e: ~p passed, ~p failed ~p~n",
              [length(Tests) - length(Failed), length(Failed), Failed]),
    halt(case Failed of [] -> 0; _ -> 1 end).

run(T, CN) ->
    T0 = erlang:monotonic_time(millisecond),
    R = try ?MODULE:T(CN) of
            ok -> ok;
            Other -> {bad, Other}
        catch C:E:S -> {C, E, S}
        end,
    Ms = erlang:monotonic_time(millisecond) - T0,
    case R of
        ok -> io:format("e2e: ~p ok (~p ms)~n", [T, Ms]);
        _ -> io:format("e2e: ~p FAILED: ~p~n", [T, R])
    end,
    flush(),
    R.

flush() -> receive _ -> flush() after 0 -> ok end.

recv(Pattern) -> recv(Pattern, ?T).
recv(Match, Timeout) ->
    receive M ->
            case Match(M) of
                true -> M;
                false ->
                    io:format("e2e: (skipped ~P)~n", [M, 20]),
                    recv(Match, Timeout)
            end
    after Timeout -> error({timeout, erlang:process_info(self(), messages)})
    end.

whereis_c(CN, Name) ->
    {cactor_probe, CN} ! {whereis, Name, self()},
    receive {whereis, Name, P} -> P after ?T -> error(whereis_timeout) end.

%% ---- tests ----

send_echo(CN) ->
    {echo, CN} ! {self(), hello},
    receive {echo, hello} -> ok after ?T -> error(no_echo) end,
    %% a pid's sends: the echo's reply goes to this pid, through its own
    %% connection's SEND_SENDER
    Term = {a, [1, 2.5, "str", <<"bin">>], #{k => v}, self(), make_ref()},
    {echo, CN} ! {self(), Term},
    receive {echo, Term} -> ok after ?T -> error(no_echo2) end.

gen_call(CN) ->
    {ping, 1} = gen_server:call({echo, CN}, {ping, 1}, ?T),
    [x, y] = gen_server:call({echo, CN}, [x, y], ?T),
    %% by pid too
    Pid = whereis_c(CN, echo),
    true = is_pid(Pid),
    CN = node(Pid),
    hi = gen_server:call(Pid, hi, ?T),
    %% and sys, as a gen_server
    #{count := _} = sys:get_state(Pid, ?T),
    {status, Pid, {module, gen_server}, _} = sys:get_status(Pid, ?T),
    {error, {not_supported, suspend}} = sys:suspend(Pid, ?T),
    ok.

cast_report(CN) ->
    [{echo, CN} ! {cast, N} || N <- lists:seq(1, 100)],
    {echo, CN} ! {report, self()},
    receive {count, 100} -> ok; {count, N} -> error({count, N}) after ?T -> error(no_count) end.

%% A spawn request runs the C function in an actor of its own, which exits
%% normal (or with the function's error, undef included).
spawn_request_runs(CN) ->
    Ref = erlang:spawn_request(CN, erlang, node, [], [monitor]),
    receive
        {spawn_reply, Ref, ok, Pid} when node(Pid) =:= CN -> ok
    after ?T -> error(no_spawn_reply)
    end,
    receive {'DOWN', Ref, process, _, normal} -> ok after ?T -> error(no_down) end,
    Ref2 = erlang:spawn_request(CN, no_such_module, f, [], [monitor]),
    receive {'DOWN', Ref2, process, _, {undef, _}} -> ok after ?T -> error(no_undef) end.

monitor_by_name_noproc(CN) ->
    Ref = erlang:monitor(process, {no_such_name, CN}),
    receive
        {'DOWN', Ref, process, {no_such_name, CN}, noproc} -> ok
    after ?T -> error(no_down)
    end.

monitor_kill_restart(CN) ->
    Old = whereis_c(CN, echo),
    Ref = erlang:monitor(process, {echo, CN}),
    exit(Old, kill),
    receive
        {'DOWN', Ref, process, {echo, CN}, killed} -> ok;
        {'DOWN', Ref, process, Who, Why} -> error({down, Who, Why})
    after ?T -> error(no_down)
    end,
    New = wait_restart(CN, Old, 50),
    {ping, 2} = gen_server:call({echo, CN}, {ping, 2}, ?T),
    true = New =/= Old,
    ok.

wait_restart(_CN, _Old, 0) -> error(echo_not_restarted);
wait_restart(CN, Old, N) ->
    case whereis_c(CN, echo) of
        P when is_pid(P), P =/= Old -> P;
        _ -> timer:sleep(100), wait_restart(CN, Old, N - 1)
    end.

link_kill(CN) ->
    process_flag(trap_exit, true),
    Old = whereis_c(CN, echo),
    link(Old),
    %% the link is in place once echo has seen it: a round trip after it
    {echo, CN} ! {self(), sync},
    receive {echo, sync} -> ok after ?T -> error(no_sync) end,
    exit(Old, kill),
    receive
        {'EXIT', Old, killed} -> ok;
        {'EXIT', Old, Why} -> error({exit, Why})
    after ?T -> error(no_exit)
    end,
    process_flag(trap_exit, false),
    wait_restart(CN, Old, 50),
    put(dead_echo, Old),
    ok.

link_dead_noproc(CN) ->
    Dead = case get(dead_echo) of undefined -> error(no_dead_pid); P -> P end,
    CN = node(Dead),
    process_flag(trap_exit, true),
    link(Dead),
    receive {'EXIT', Dead, noproc} -> ok after ?T -> error(no_noproc) end,
    process_flag(trap_exit, false),
    ok.

peer(Name, Args) ->
    {ok, P, Node} = peer:start_link(#{name => Name, host => "127.0.0.1", longnames => true,
                                       connection => standard_io,
                                       args => ["-pa", filename:dirname(code:which(?MODULE))
                                                | Args]}),
    {P, Node}.

wrong_cookie(CN) ->
    {P, _} = peer(wrong_cookie, ["-setcookie", "not_the_cookie"]),
    timeout = peer:call(P, ?MODULE, peer_echo, [CN, refused], ?T * 2),
    false = lists:member(CN, peer:call(P, erlang, nodes, [hidden], ?T)),
    peer:stop(P),
    %% the node still serves others
    {echo, CN} ! {self(), still_here},
    receive {echo, still_here} -> ok after ?T -> error(node_gone) end.

%% Garbage before any handshake: only that connection goes.
garbage_handshake(CN) ->
    [Alive, Host] = string:split(atom_to_list(CN), "@"),
    {port, Port, _} = erl_epmd:port_please(Alive, Host),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    ok = gen_tcp:send(S, <<0, 5, "junk!", 255, 255, 255, 255, 1, 2, 3>>),
    {error, closed} = gen_tcp:recv(S, 0, ?T),
    gen_tcp:close(S),
    {echo, CN} ! {self(), after_garbage},
    receive {echo, after_garbage} -> ok after ?T -> error(node_gone) end.

%% A C actor monitors and links processes of another Erlang node (the
%% C node dials it on demand), which is then killed: noconnection.
noconnection(CN) ->
    {P, B} = peer(victim, []),
    V1 = peer:call(P, erlang, spawn, [timer, sleep, [infinity]], ?T),
    V2 = peer:call(P, erlang, spawn, [timer, sleep, [infinity]], ?T),
    {cactor_probe, CN} ! {monitor, V1, self()},
    receive {monitoring, V1} -> ok after ?T -> error(no_monitoring) end,
    {cactor_probe, CN} ! {link, V2, self()},
    receive {linked, V2} -> ok after ?T -> error(no_link) end,
    %% the C node is connected to B once B sees it
    ok = wait_connected(P, CN, 50),
    timer:sleep(300),
    OsPid = peer:call(P, os, getpid, [], ?T),
    os:cmd("kill -9 " ++ OsPid),
    %% selective receives: the two come in either order
    R1 = receive {down, V1, W1} -> {down, V1, W1} after ?T -> no_down end,
    R2 = receive {exit, V2, W2} -> {exit, V2, W2} after ?T -> no_exit end,
    catch peer:stop(P),
    case {R1, R2} of
        {{down, V1, noconnection}, {exit, V2, noconnection}} -> ok;
        _ -> error({got, R1, R2, B})
    end.

wait_connected(_P, _CN, 0) -> error(not_connected);
wait_connected(P, CN, N) ->
    case lists:member(CN, peer:call(P, erlang, nodes, [hidden], ?T)) of
        true -> ok;
        false -> timer:sleep(100), wait_connected(P, CN, N - 1)
    end.

node_monitor(CN) ->
    {P, B} = peer(nodemon, []),
    {cactor_probe, CN} ! {monitor_node, B, self()},
    receive {monitoring_node, B} -> ok after ?T -> error(no_nodemon) end,
    {ok, true} = peer:call(P, ?MODULE, peer_echo, [CN, up], ?T),
    receive {nodeup, B} -> ok after ?T -> error(no_nodeup) end,
    peer:stop(P),
    receive {nodedown, B} -> ok after ?T -> error(no_nodedown) end.

peer_echo(CN, Tag) ->
    {echo, CN} ! {self(), Tag},
    receive {echo, Tag} -> {ok, lists:member(CN, nodes(hidden))} after 3000 -> timeout end.

three_nodes(CN) ->
    Peers = [peer(list_to_atom("three_" ++ integer_to_list(I)), []) || I <- [1, 2, 3]],
    Self = self(),
    [spawn_link(fun() -> Self ! {done, I, peer:call(P, ?MODULE, peer_echo, [CN, I], ?T)} end)
     || {I, {P, _}} <- lists:zip([1, 2, 3], Peers)],
    Rs = [receive {done, I, R} -> R after ?T * 2 -> timeout end || I <- [1, 2, 3]],
    %% all three are connected at once, and so are we
    [{ok, true}, {ok, true}, {ok, true}] = Rs,
    {echo, CN} ! {self(), me_too},
    receive {echo, me_too} -> ok after ?T -> error(no_echo) end,
    [peer:stop(P) || {P, _} <- Peers],
    ok.

big_binary(CN) ->
    Size = 64 * 1024 * 1024,
    Bin = binary:copy(crypto:strong_rand_bytes(1024 * 1024), 64),
    Size = byte_size(Bin),
    {echo, CN} ! {self(), Bin},
    receive
        {echo, Got} when Got =:= Bin -> ok;
        {echo, Got} -> error({different, byte_size(Got)})
    after 60000 -> error(no_big_echo)
    end.

%% ---- services: net_kernel, rex, erpc, erl_call; the example plugin ----

ping(CN) ->
    pong = net_adm:ping(CN),
    ok.

rpc_builtins(CN) ->
    CN = rpc:call(CN, erlang, node, [], ?T),
    Echo = rpc:call(CN, erlang, whereis, [echo], ?T),
    true = is_pid(Echo),
    CN = node(Echo),
    Echo = whereis_c(CN, echo),
    undefined = rpc:call(CN, erlang, whereis, [no_such_name], ?T),
    #{node := CN, actors := A, schedulers := 2, nodes := Nodes, restarts := R} =
        rpc:call(CN, cactor, info, [], ?T),
    true = A >= 4 andalso is_integer(R),
    true = lists:member(node(), Nodes),
    %% process_info, answered by the actor itself
    Sup = whereis_c(CN, cactor_sup),
    M = erlang:monitor(process, Echo),
    [{links, [Sup]}, {monitors, []}, {monitored_by, By}, {trap_exit, false}] =
        rpc:call(CN, erlang, process_info, [Echo, [links, monitors, monitored_by, trap_exit]], ?T),
    true = lists:member(self(), By),
    true = erlang:demonitor(M),
    [{registered_name, echo}, {message_queue_len, _} | _] =
        rpc:call(CN, erlang, process_info, [Echo], ?T),
    ok.

rpc_undef(CN) ->
    {badrpc, {'EXIT', {undef, [{nomod, nofun, [1, a], []}]}}} =
        rpc:call(CN, nomod, nofun, [1, a], ?T),
    %% a known function with the wrong arity is undef too
    {badrpc, {'EXIT', {undef, _}}} = rpc:call(CN, erlang, node, [extra], ?T),
    %% rex's own protocol (OTP's gen_server call to rex) works as well
    CN = gen_server:call({rex, CN}, {call, erlang, node, [], user}, ?T),
    ok.

erpc_calls(CN) ->
    CN = erpc:call(CN, erlang, node, [], ?T),
    try erpc:call(CN, nomod, nofun, [], ?T) of
        V -> error({unexpected, V})
    catch error:{exception, undef, [{nomod, nofun, [], []}]} -> ok
    end,
    %% many at once, from many processes
    Self = self(),
    Pids = [spawn(fun() -> Self ! {done, self(), erpc:call(CN, erlang, node, [], ?T)} end)
            || _ <- lists:seq(1, 50)],
    [receive {done, P, CN} -> ok after ?T -> error(erpc_timeout) end || P <- Pids],
    ok.

erl_call(CN) ->
    ErlCall = filename:join([code:lib_dir(erl_interface), "bin", "erl_call"]),
    {ok, Cookie} = file:read_file(filename:join(os:getenv("HOME"), ".erlang.cookie")),
    Cmd = lists:flatten(io_lib:format("~s -n ~s -c ~s -a 'erlang node'",
                                      [ErlCall, CN, Cookie])),
    Out = string:trim(os:cmd(Cmd)),
    case Out =:= atom_to_list(CN) orelse Out =:= "'" ++ atom_to_list(CN) ++ "'" of
        true -> ok;
        false -> error({erl_call, Cmd, Out})
    end.

plugin_kv(CN) ->
    ok = gen_server:call({kv, CN}, {put, colour, <<"blue">>}, ?T),
    {ok, <<"blue">>} = gen_server:call({kv, CN}, {get, colour}, ?T),
    gen_server:cast({kv, CN}, {put, size, 42}),
    {ok, 42} = gen_server:call({kv, CN}, {get, size}, ?T),
    not_found = gen_server:call({kv, CN}, {get, nothing}, ?T),
    %% a crash: the caller sees the exit, the supervisor restarts kv empty
    Old = whereis_c(CN, kv),
    {'EXIT', {{crashed, on_request}, _}} = (catch gen_server:call({kv, CN}, crash, ?T)),
    New = wait_restart_name(CN, kv, Old, 100),
    true = New =/= Old,
    not_found = gen_server:call({kv, CN}, {get, colour}, ?T),
    ok.

wait_restart_name(_CN, Name, _Old, 0) -> error({not_restarted, Name});
wait_restart_name(CN, Name, Old, N) ->
    case whereis_c(CN, Name) of
        P when is_pid(P), P =/= Old -> P;
        _ -> timer:sleep(50), wait_restart_name(CN, Name, Old, N - 1)
    end.

plugin_rpc(CN) ->
    42 = rpc:call(CN, example, add, [2, 40], ?T),
    <<"cba">> = erpc:call(CN, example, reverse, [<<"abc">>], ?T),
    {badrpc, {'EXIT', {{error, einval}, _}}} = rpc:call(CN, example, add, [a, b], ?T),
    %% a deferred answer (example:get asks kv) through rpc, erpc and rex's
    %% two protocols; then kv killed while it holds the calls; then too slow
    ok = gen_server:call({kv, CN}, {put, d, 1}, ?T),
    {ok, 1} = rpc:call(CN, example, get, [d], ?T),
    {ok, 1} = erpc:call(CN, example, get, [d], ?T),
    {ok, 1} = gen_server:call({rex, CN}, {call, example, get, [d], user}, ?T),
    {rex, CN} ! {self(), {call, example, get, [d], user}},
    {rex, {ok, 1}} = recv(fun(M) -> element(1, M) =:= rex end),
    Kv = whereis_c(CN, kv),
    held_calls_fail(CN, killed, fun() -> exit(Kv, kill) end),
    Kv2 = wait_restart_name(CN, kv, Kv, 100),
    held_calls_fail(CN, timeout, fun() -> ok end),
    ok = sys:resume(Kv2, ?T),
    not_found = rpc:call(CN, example, get, [d], ?T),
    ok.

%% kv suspended holds example:get's calls (erpc, and rex's gen_server
%% protocol) while Action runs: both fail with Why.
held_calls_fail(CN, Why, Action) ->
    ok = sys:suspend({kv, CN}, ?T),
    Erpc = erpc:send_request(CN, example, get, [d]),
    Rex = gen_server:send_request({rex, CN}, {call, example, get, [d], user}),
    timer:sleep(300),
    Action(),
    try erpc:receive_response(Erpc, 2 * ?T) of
        V -> error({unexpected, V})
    catch exit:{exception, Why} -> ok
    end,
    {reply, {badrpc, {'EXIT', Why}}} = gen_server:receive_response(Rex, 2 * ?T),
    ok.

%% A C actor calls an Erlang gen_server: a reply, a dead server, a silent one.
c_calls_erlang(CN) ->
    Server = spawn(fun Loop() ->
                      receive
                          {'$gen_call', {From, Tag}, Req} -> From ! {Tag, {got, Req}}, Loop();
                          stop -> ok
                      end
                  end),
    {caller, CN} ! {call, Server, {hello, 1}, self()},
    receive {called, {got, {hello, 1}}} -> ok after ?T -> error(no_call_reply) end,
    Server ! stop,
    Dead = spawn(fun() -> ok end),
    timer:sleep(50),
    {caller, CN} ! {call, Dead, x, self()},
    receive {call_failed, noproc} -> ok after ?T -> error(no_call_failed) end,
    Silent = spawn(fun() -> receive stop -> ok end end),
    {caller, CN} ! {call, Silent, x, self()},
    receive {call_failed, timeout} -> ok after ?T -> error(no_call_timeout) end,
    Silent ! stop,
    ok.
