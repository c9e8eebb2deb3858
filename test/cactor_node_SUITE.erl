%% The life of a C node under the cactor application: start and stop,
%% start errors, a crash of the OS process (kill -9) and its restart by
%% the Erlang supervisor, the restart intensity, a wrong cookie, several
%% Erlang nodes at once, and the C node's log lines in the Erlang logger.
-module(cactor_node_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(T, 10000).
-import(cactor_test_lib, [recv/2, wait_until/2, wait_value/2]).

suite() ->
    [{timetrap, {seconds, 90}}].

all() ->
    [start_stop, name_forms, already_started, bad_options, bad_plugin, missing_executable,
     not_alive, no_priv_dir, options_reach_node, kill_9_restart, init_stop_and_halt,
     restart_intensity,
     stop_while_monitored, wrong_cookie, several_erlang_nodes, batching_per_peer,
     logs_reach_logger, owner_vm_dies, configured_nodes, own_supervisor].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(cactor),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(_Case, _Config) ->
    [cactor:stop_node(N) || N <- cactor:which_nodes()],
    cactor_test_lib:stop_capture_logs(),
    cactor_test_lib:flush(),
    ok.

os_pid(N) ->
    {ok, P} = cactor:os_pid(N),
    P.

%% ---- start and stop ----

start_stop(_Config) ->
    {ok, N} = cactor:start_node(life, #{threads => 1}),
    ?assertEqual('life@127.0.0.1', N),
    ?assertEqual([N], cactor:which_nodes()),
    ?assert(lists:member(N, nodes(hidden))),
    ?assertEqual(pong, net_adm:ping(N)),
    {ok, #{ready_by := By, port := Port} = Info} = cactor:node_info(N),
    ct:log("node info: ~p", [Info]),
    ?assertEqual(ping, By),
    ?assertMatch({port, Port, _}, erl_epmd:port_please("life", "127.0.0.1")),
    OsPid = os_pid(N),
    ?assert(cactor_test_lib:os_alive(OsPid)),
    erlang:monitor_node(N, true),
    ok = cactor:stop_node(N),
    receive {nodedown, N} -> ok after ?T -> ct:fail(no_nodedown) end,
    ok = wait_until(fun() -> not cactor_test_lib:os_alive(OsPid) end, ?T),
    ?assertEqual([], cactor:which_nodes()),
    ?assertEqual(noport, erl_epmd:port_please("life", "127.0.0.1")),
    ?assertEqual({error, not_found}, cactor:stop_node(N)),
    ?assertEqual({error, not_found}, cactor:os_pid(N)),
    %% the same name can start again
    {ok, N} = cactor:start_node(life, [{threads, 1}]),
    ?assertEqual(again, gen_server:call({echo, N}, again, ?T)),
    ok = cactor:stop_node(N).

name_forms(_Config) ->
    {ok, A} = cactor:start_node("form_a", #{}),
    {ok, B} = cactor:start_node('form_b@127.0.0.1', #{}),
    {ok, C} = cactor:start_node(<<"form_c">>, #{}),
    ?assertEqual(['form_a@127.0.0.1', 'form_b@127.0.0.1', 'form_c@127.0.0.1'], [A, B, C]),
    [?assertEqual(X, rpc:call(X, erlang, node, [], ?T)) || X <- [A, B, C]],
    ?assertEqual(lists:sort([A, B, C]), lists:sort(cactor:which_nodes())),
    ?assertEqual({error, {badarg, "a@b@c"}}, cactor:start_node("a@b@c", #{})),
    ?assertEqual({error, {badarg, "@h"}}, cactor:start_node("@h", #{})),
    ?assertEqual({error, {badarg, 42}}, cactor:start_node(42, #{})).

already_started(_Config) ->
    {ok, N} = cactor:start_node(twice, #{}),
    P = os_pid(N),
    ?assertEqual({error, {already_started, N}}, cactor:start_node(twice, #{})),
    %% the first is untouched
    ?assertEqual(P, os_pid(N)),
    ?assertEqual(pong, net_adm:ping(N)).

bad_options(_Config) ->
    %% cactor-node refuses --threads 0 (usage error, status 2)
    {error, {exited_at_start, 2, Lines}} = cactor:start_node(bad_threads, #{threads => 0}),
    ct:log("~p", [Lines]),
    ?assert(lists:any(fun(L) -> binary:match(L, <<"--threads">>) =/= nomatch end, Lines)),
    {error, {exited_at_start, 2, _}} = cactor:start_node(bad_arg, #{extra_args => ["--bogus"]}),
    %% and a batch wait that is not a number of microseconds up to 1 s
    {error, {exited_at_start, 2, BLines}} =
        cactor:start_node(bad_batch, #{extra_args => ["--batch-us", "2000000"]}),
    ?assert(lists:any(fun(L) -> binary:match(L, <<"--batch-us takes 0..1000000">>) =/= nomatch end,
                      BLines)),
    %% a spin budget over 1 ms, or not a number
    [begin
         {error, {exited_at_start, 2, SLines}} = cactor:start_node(bad_spin, #{spin_us => V}),
         ?assert(lists:any(fun(L) -> binary:match(L, <<"--spin-us takes 0..1000">>) =/= nomatch end,
                           SLines))
     end || V <- ["1001", "-1", "20us"]],
    ?assertEqual([], cactor:which_nodes()),
    %% while 0 (never spin) is a valid choice: the node serves
    {ok, N} = cactor:start_node(no_spin, #{spin_us => 0, batch_us => 0}),
    ?assertEqual([{a, I} || I <- lists:seq(1, 50)],
                 [gen_server:call({echo, N}, {a, I}) || I <- lists:seq(1, 50)]),
    ok = cactor:stop_node(N),
    ?assertEqual([], cactor:which_nodes()).

bad_plugin(Config) ->
    Missing = filename:join(?config(priv_dir, Config), "no_such_plugin.so"),
    {error, {exited_at_start, S, Lines}} = cactor:start_node(bad_plugin, #{plugins => [Missing]}),
    ct:log("status ~p: ~p", [S, Lines]),
    ?assertNotEqual(0, S),
    ?assert(lists:any(fun(L) -> binary:match(L, <<"--load">>) =/= nomatch end, Lines)),
    %% not a shared object at all
    NotSo = filename:join(?config(priv_dir, Config), "not_a.so"),
    ok = file:write_file(NotSo, <<"garbage">>),
    ?assertMatch({error, {exited_at_start, _, _}}, cactor:start_node(bad_plugin2, #{plugins => [NotSo]})),
    ?assertEqual([], cactor:which_nodes()).

missing_executable(_Config) ->
    ?assertMatch({error, {no_executable, "/nonexistent/cactor-node", enoent, _}},
                 cactor:start_node(nox, #{executable => "/nonexistent/cactor-node"})),
    {ok, Exe} = cactor:executable(),
    ?assertEqual(filename:join(code:priv_dir(cactor), "cactor-node"), Exe).

%% On a node that is not distributed, start_node says so.
not_alive(_Config) ->
    {ok, P, nonode@nohost} = peer:start(#{connection => standard_io, env => cactor_test_lib:peer_env(),
                           args => ["-pa", filename:dirname(code:which(cactor))]}),
    try
        ?assertEqual(nonode@nohost, peer:call(P, erlang, node, [], ?T)),
        ?assertEqual({error, not_alive}, peer:call(P, cactor, start_node, [x, #{}], ?T))
    after
        peer:stop(P)
    end.

%% The beams without the application directory around them: priv_dir
%% gives bad_name, and start_node says what to do.
no_priv_dir(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "loose_beams"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Ebin = filename:dirname(code:which(cactor)),
    [{ok, _} = file:copy(filename:join(Ebin, F), filename:join(Dir, F))
     || F <- ["cactor.beam", "cactor_node.beam"]],
    {ok, P, nonode@nohost} = peer:start(#{connection => standard_io, env => cactor_test_lib:peer_env(),
                           args => ["-pa", Dir]}),
    try
        ?assertEqual({error, bad_name}, peer:call(P, code, priv_dir, [cactor], ?T)),
        R = peer:call(P, cactor, executable, [], ?T),
        ct:log("~p", [R]),
        ?assertMatch({error, {no_priv_dir, _}}, R)
    after
        peer:stop(P)
    end.

options_reach_node(_Config) ->
    %% threads, cookie, listen, plugins, extra args: seen from inside
    {ok, N} = cactor:start_node(opts, #{threads => 3, cookie => erlang:get_cookie(),
                                        listen => "127.0.0.1",
                                        plugins => [cactor_test_lib:plugin()],
                                        extra_args => ["--probe"]}),
    ?assertMatch(#{schedulers := 3}, rpc:call(N, cactor, info, [], ?T)),
    ?assert(is_pid(rpc:call(N, erlang, whereis, [kv], ?T))),
    ?assert(is_pid(rpc:call(N, erlang, whereis, [cactor_probe], ?T))),
    ?assertEqual(7, rpc:call(N, example, add, [3, 4], ?T)).

%% ---- crash and restart ----

%% kill -9 of the OS process: monitors on its actors fire noconnection,
%% monitor_node fires nodedown, and the Erlang supervisor starts a new
%% cactor-node under the same name, whose actors answer again.
kill_9_restart(_Config) ->
    {ok, N} = cactor:start_node(crashy, #{plugins => [cactor_test_lib:plugin()]}),
    OldOs = os_pid(N),
    Echo = rpc:call(N, erlang, whereis, [echo], ?T),
    {ok, NodeSup} = cactor_sup:node_sup(N),
    {ok, Worker} = cactor_node_sup:worker(NodeSup),
    WRef = erlang:monitor(process, Worker),
    true = erlang:monitor_node(N, true),
    R1 = erlang:monitor(process, Echo),
    R2 = erlang:monitor(process, {kv, N}),
    ok = cactor_test_lib:kill_os(OldOs, "KILL"),
    receive {nodedown, N} -> ok after ?T -> ct:fail(no_nodedown) end,
    receive {'DOWN', R1, process, Echo, W1} -> ?assertEqual(noconnection, W1)
    after ?T -> ct:fail(no_down_pid) end,
    receive {'DOWN', R2, process, {kv, N}, W2} -> ?assertEqual(noconnection, W2)
    after ?T -> ct:fail(no_down_name) end,
    %% the owning gen_server saw the exit status
    receive {'DOWN', WRef, process, Worker, Why} ->
            ?assertEqual({cactor_node_exited, 128 + 9}, Why)
    after ?T -> ct:fail(worker_did_not_exit) end,
    %% restarted: a new OS process, same node name, same supervisor
    NewOs = wait_value(fun() ->
                               case cactor:os_pid(N) of
                                   {ok, P} when P =/= OldOs -> {ok, P};
                                   _ -> no
                               end
                       end, 20000),
    ?assertNot(cactor_test_lib:os_alive(OldOs)),
    ?assert(cactor_test_lib:os_alive(NewOs)),
    ?assertEqual({ok, NodeSup}, cactor_sup:node_sup(N)),
    ?assertEqual(pong, net_adm:ping(N)),
    ?assertEqual(back, gen_server:call({echo, N}, back, ?T)),
    NewEcho = rpc:call(N, erlang, whereis, [echo], ?T),
    ?assertNotEqual(Echo, NewEcho),
    ?assertEqual(N, node(NewEcho)),
    ?assertEqual(not_found, gen_server:call({kv, N}, {get, anything}, ?T)),
    ?assertEqual(42, rpc:call(N, example, add, [40, 2], ?T)),
    %% the old pid is dead for good
    R3 = erlang:monitor(process, Echo),
    receive {'DOWN', R3, process, Echo, W3} -> ?assertEqual(noproc, W3)
    after ?T -> ct:fail(no_down_old) end,
    %% monitor_node works on the new incarnation
    true = erlang:monitor_node(N, true),
    ok = cactor:stop_node(N),
    receive {nodedown, N} -> ok after ?T -> ct:fail(no_nodedown_2) end.

%% init:stop and erlang:halt called on a C node, as on an Erlang one: a
%% clean stop with the status asked for, or a stop at once. Its supervisor
%% then does what the restart type says: a transient node stopped cleanly
%% is forgotten (its supervisor shuts down), a permanent one starts again,
%% a temporary one is forgotten whatever its status.
init_stop_and_halt(_Config) ->
    {ok, N} = cactor:start_node(stoppable, #{restart => transient}),
    {ok, Sup} = cactor_sup:node_sup(N),
    {ok, Worker} = cactor_node_sup:worker(Sup),
    [WRef, SRef] = [erlang:monitor(process, P) || P <- [Worker, Sup]],
    Os = os_pid(N),
    true = erlang:monitor_node(N, true),
    ?assertMatch({badrpc, {'EXIT', {{error, einval}, _}}}, rpc:call(N, init, stop, [-1], ?T)),
    ?assertMatch({badrpc, {'EXIT', {{error, einval}, _}}}, rpc:call(N, erlang, halt, [x], ?T)),
    ?assertEqual(ok, rpc:call(N, init, stop, [], ?T)),
    receive {nodedown, N} -> ok after ?T -> ct:fail(no_nodedown) end,
    receive {'DOWN', WRef, process, Worker, Why} ->
            ?assertEqual({shutdown, {cactor_node_exited, 0}}, Why)
    after ?T -> ct:fail(worker_did_not_stop) end,
    receive {'DOWN', SRef, process, Sup, SWhy} -> ?assertEqual(shutdown, SWhy)
    after ?T -> ct:fail(supervisor_did_not_stop) end,
    ?assertEqual([], cactor:which_nodes()),
    ?assertNot(cactor_test_lib:os_alive(Os)),
    %% permanent (the default): init:stop(3) exits 3, and it is started again
    {ok, P} = cactor:start_node(stoppable_p, #{}),
    PWorker = cactor_worker(P),
    PRef = erlang:monitor(process, PWorker),
    POs = os_pid(P),
    ?assertEqual(ok, rpc:call(P, init, stop, [3], ?T)),
    receive {'DOWN', PRef, process, PWorker, PWhy} -> ?assertEqual({cactor_node_exited, 3}, PWhy)
    after ?T -> ct:fail(permanent_did_not_stop) end,
    _ = wait_value(fun() ->
                           case cactor:os_pid(P) of
                               {ok, O} when O =/= POs -> {ok, O};
                               _ -> no
                           end
                   end, 20000),
    ?assertEqual(pong, net_adm:ping(P)),
    %% erlang:halt(7): no answer, the node is gone at once
    {ok, H} = cactor:start_node(haltable, #{restart => temporary}),
    HWorker = cactor_worker(H),
    HRef = erlang:monitor(process, HWorker),
    ?assertEqual({badrpc, nodedown}, rpc:call(H, erlang, halt, [7], ?T)),
    receive {'DOWN', HRef, process, HWorker, HWhy} -> ?assertEqual({cactor_node_exited, 7}, HWhy)
    after ?T -> ct:fail(halt_did_not_stop) end,
    ok = wait_until(fun() -> cactor:which_nodes() =:= [P] end, ?T),
    %% erlang:halt(abort): SIGABRT
    {ok, Ab} = cactor:start_node(aborting, #{restart => temporary}),
    AbWorker = cactor_worker(Ab),
    AbRef = erlang:monitor(process, AbWorker),
    ?assertEqual({badrpc, nodedown}, rpc:call(Ab, erlang, halt, [abort], ?T)),
    receive {'DOWN', AbRef, process, AbWorker, AbWhy} ->
            ?assertEqual({cactor_node_exited, 128 + 6}, AbWhy)
    after ?T -> ct:fail(abort_did_not_stop) end.

cactor_worker(N) ->
    {ok, Sup} = cactor_sup:node_sup(N),
    {ok, W} = cactor_node_sup:worker(Sup),
    W.

%% intensity 1 in 60 s: the first crash is restarted, the second makes
%% the node's supervisor give up; the other nodes are not touched.
restart_intensity(_Config) ->
    {ok, Other} = cactor:start_node(bystander, #{}),
    {ok, N} = cactor:start_node(fragile, #{intensity => 1, period => 60}),
    {ok, Sup} = cactor_sup:node_sup(N),
    SRef = erlang:monitor(process, Sup),
    Os1 = os_pid(N),
    ok = cactor_test_lib:kill_os(Os1, "KILL"),
    Os2 = wait_value(fun() ->
                             case cactor:os_pid(N) of
                                 {ok, P} when P =/= Os1 -> {ok, P};
                                 _ -> no
                             end
                     end, 20000),
    ?assertEqual(pong, net_adm:ping(N)),
    ok = cactor_test_lib:kill_os(Os2, "KILL"),
    receive {'DOWN', SRef, process, Sup, Why} -> ?assertEqual(shutdown, Why)
    after 20000 -> ct:fail(supervisor_did_not_give_up) end,
    ?assertEqual([Other], cactor:which_nodes()),
    ?assertEqual({error, not_found}, cactor:os_pid(N)),
    timer:sleep(300),
    ?assertEqual(pang, net_adm:ping(N)),
    ?assertEqual(pong, net_adm:ping(Other)),
    %% restart intensity 0: given up at the first crash
    {ok, N0} = cactor:start_node(fragile0, #{intensity => 0}),
    {ok, Sup0} = cactor_sup:node_sup(N0),
    SRef0 = erlang:monitor(process, Sup0),
    ok = cactor_test_lib:kill_os(os_pid(N0), "KILL"),
    receive {'DOWN', SRef0, process, Sup0, shutdown} -> ok
    after 20000 -> ct:fail(supervisor0_did_not_give_up) end,
    ?assertEqual([Other], cactor:which_nodes()).

%% A process monitoring a C node and one of its actors sees a clean stop.
stop_while_monitored(_Config) ->
    {ok, N} = cactor:start_node(watched, #{}),
    Self = self(),
    Watcher = spawn(fun() ->
                            erlang:monitor_node(N, true),
                            R = erlang:monitor(process, {echo, N}),
                            Self ! watching,
                            receive {'DOWN', R, process, _, Why} -> Self ! {down, Why} end,
                            receive {nodedown, N} -> Self ! nodedown end
                    end),
    receive watching -> ok after ?T -> ct:fail(no_watcher) end,
    OsPid = os_pid(N),
    ok = cactor:stop_node(N),
    %% SIGTERM: the node closes its connections
    receive {down, W} -> ?assert(lists:member(W, [noconnection, shutdown, killed]), W)
    after ?T -> ct:fail(no_down) end,
    receive nodedown -> ok after ?T -> ct:fail(no_nodedown) end,
    ?assertNot(cactor_test_lib:os_alive(OsPid)),
    exit(Watcher, kill).

%% ---- cookies ----

%% A C node with another cookie is unreachable (pang, noconnection);
%% the node with the right one keeps working.
wrong_cookie(_Config) ->
    {ok, Good} = cactor:start_node(good_cookie, #{}),
    {ok, Bad} = cactor:start_node(bad_cookie, #{cookie => 'not_the_cookie', await => ready_line}),
    ?assertMatch({ok, #{ready_by := ready_line}}, cactor:node_info(Bad)),
    %% it runs and is registered, but will not talk to us
    ?assertMatch({port, _, _}, erl_epmd:port_please("bad_cookie", "127.0.0.1")),
    ?assertEqual(pang, net_adm:ping(Bad)),
    ?assertNot(lists:member(Bad, nodes(hidden))),
    ?assertExit({{nodedown, Bad}, _}, gen_server:call({echo, Bad}, hi, 3000)),
    ?assertMatch({badrpc, nodedown}, rpc:call(Bad, erlang, node, [], 3000)),
    %% and a node with the wrong cookie cannot be started and waited for
    ?assertMatch({error, {not_answering, 'bad_cookie2@127.0.0.1', _}},
                 cactor:start_node(bad_cookie2, #{cookie => other, start_timeout => 2000})),
    ?assertEqual(lists:sort([Good, Bad]), lists:sort(cactor:which_nodes())),
    %% the good one works on
    ?assertEqual(pong, net_adm:ping(Good)),
    ?assertEqual(still, gen_server:call({echo, Good}, still, ?T)),
    ?assertEqual(Good, rpc:call(Good, erlang, node, [], ?T)).

%% ---- several Erlang nodes ----

several_erlang_nodes(_Config) ->
    {ok, N} = cactor:start_node(shared, #{plugins => [cactor_test_lib:plugin()]}),
    Peers = [cactor_test_lib:start_peer(list_to_atom("peer" ++ integer_to_list(I) ++ "_"
                                                     ++ os:getpid()))
             || I <- [1, 2, 3]],
    try
        Self = self(),
        %% each peer, at the same time: echo, gen_server call, rpc, erpc, kv
        [spawn(PN, fun() -> Self ! {done, I, peer_work(N, I)} end)
         || {I, {_, PN}} <- lists:zip([1, 2, 3], Peers)],
        Rs = [receive {done, I, R} -> R after 30000 -> {timeout, I} end || I <- [1, 2, 3]],
        ?assertEqual([ok, ok, ok], Rs),
        %% the C node sees all four Erlang nodes
        Seen = maps:get(nodes, rpc:call(N, cactor, info, [], ?T)),
        [?assert(lists:member(X, Seen), X) || X <- [node() | [PN || {_, PN} <- Peers]]],
        %% what one peer put, another reads
        {_, P1} = hd(Peers),
        {_, P3} = lists:last(Peers),
        ok = erpc:call(P1, gen_server, call, [{kv, N}, {put, shared, from_p1}, ?T]),
        ?assertEqual({ok, from_p1}, erpc:call(P3, gen_server, call, [{kv, N}, {get, shared}, ?T])),
        %% every peer sees the C node go down
        [spawn(PN, fun() -> erlang:monitor_node(N, true), Self ! {monitoring, PN},
                            receive {nodedown, N} -> Self ! {nodedown, PN} end
                   end) || {_, PN} <- Peers],
        [receive {monitoring, PN} -> ok after ?T -> ct:fail({no_monitor, PN}) end
         || {_, PN} <- Peers],
        ok = cactor:stop_node(N),
        [receive {nodedown, PN} -> ok after ?T -> ct:fail({no_nodedown, PN}) end
         || {_, PN} <- Peers]
    after
        [cactor_test_lib:stop_peer(P) || {P, _} <- Peers]
    end.

%% ---- reading in batches, per peer ----

%% A stream of casts from this node makes the C node wait for input to
%% pile up before it reads again (20 ms at a time here, to be plain to
%% see); a peer node calling sequentially meanwhile is told apart and not
%% made to wait.
batching_per_peer(_Config) ->
    {ok, N} = cactor:start_node(batcher, #{extra_args => ["--batch-us", "20000"]}),
    {P, PN} = cactor_test_lib:start_peer(list_to_atom("caller_" ++ os:getpid())),
    Self = self(),
    Streamer = spawn_link(fun() -> stream(N, Self, 0) end),
    try
        ?assertEqual(pong, erpc:call(PN, net_adm, ping, [N], ?T)),
        Waits = fun() -> maps:get(batch_waits, rpc:call(N, cactor, info, [], ?T)) end,
        wait_until(fun() -> Waits() > 10 end, ?T),
        Us = erpc:call(PN, fun() ->
                               [element(1, timer:tc(gen_server, call, [{echo, N}, I, ?T]))
                                || I <- lists:seq(1, 60)]
                           end, 30000),
        Median = lists:nth(30, lists:sort(Us)),
        ct:log("sequential calls from ~p while ~p streams: median ~p us, all ~w",
               [PN, node(), Median, Us]),
        ?assert(Median < 10000), %% waiting for the stream would be 20 ms each
        %% the peer may be tried once: a few waits to tell it apart
        ?assert(length([U || U <- Us, U > 15000]) =< 6),
        ?assert(Waits() > 10)
    after
        Streamer ! stop,
        receive {streamed, Casts} -> ct:log("~p casts", [Casts]) after ?T -> ok end,
        cactor_test_lib:stop_peer(P)
    end.

stream(N, Parent, K) ->
    receive
        stop -> Parent ! {streamed, K}
    after 0 ->
        [{echo, N} ! {cast, K + I} || I <- lists:seq(1, 100)],
        stream(N, Parent, K + 100)
    end.

peer_work(N, I) ->
    try
        {echo, N} ! {self(), {peer, I}},
        receive {echo, {peer, I}} -> ok after ?T -> error(no_echo) end,
        {call, I} = gen_server:call({echo, N}, {call, I}, ?T),
        N = rpc:call(N, erlang, node, [], ?T),
        Sum = erpc:call(N, example, add, [I, I], ?T),
        Sum = 2 * I,
        ok = gen_server:call({kv, N}, {put, {peer, I}, Sum}, ?T),
        {ok, Sum} = gen_server:call({kv, N}, {get, {peer, I}}, ?T),
        pong = net_adm:ping(N),
        ok
    catch C:E:S -> {C, E, S}
    end.

%% ---- logs ----

%% The C node's stderr lines become logger events with the node name as
%% metadata, at the level cactor gave them.
logs_reach_logger(_Config) ->
    #{level := Primary} = logger:get_primary_config(),
    ok = logger:update_primary_config(#{level => all}),
    try do_logs_reach_logger()
    after logger:update_primary_config(#{level => Primary})
    end.

do_logs_reach_logger() ->
    ok = cactor_test_lib:capture_logs(),
    {ok, N} = cactor:start_node(chatty, #{extra_args => ["--verbose"]}),
    %% its start-up lines (info and debug) arrived
    #{level := info, meta := #{cactor_node := N}} = recv_log(N, <<"dist: node">>),
    %% a connection with the wrong cookie: the C node warns
    %% (over standard_io: it cannot connect to this node either)
    {ok, P, _} = peer:start(#{name => list_to_atom("intruder_" ++ os:getpid()),
                              host => "127.0.0.1", longnames => true,
                              connection => standard_io, env => cactor_test_lib:peer_env(),
                              args => ["-start_epmd", "false", "-setcookie", "wrong_cookie"]}),
    try
        ?assertEqual(pang, peer:call(P, net_adm, ping, [N], ?T))
    after
        cactor_test_lib:stop_peer(P)
    end,
    #{level := Level, meta := Meta} = recv_log(N, <<"cookie">>),
    ?assertEqual(warning, Level),
    ?assertMatch(#{cactor_node := N}, Meta),
    %% and the crash of the OS process is an error with the node name
    ok = cactor_test_lib:kill_os(os_pid(N), "KILL"),
    #{level := error} = recv_log(N, <<"exited with status 137">>).

recv_log(N, Text) ->
    {log, E} = recv(fun({log, #{meta := #{cactor_node := Node}} = E}) when Node =:= N ->
                            binary:match(log_text(E), Text) =/= nomatch;
                       (_) -> false
                    end, ?T),
    ct:log("log event: ~p", [E]),
    E.

log_text(#{msg := {string, S}}) -> unicode:characters_to_binary(S);
log_text(#{msg := {report, R}}) -> iolist_to_binary(io_lib:format("~p", [R]));
log_text(#{msg := {F, A}}) -> unicode:characters_to_binary(io_lib:format(F, A)).

%% ---- the owner VM dies: its C nodes stop too ----

%% A peer Erlang node starts a C node and is then killed (kill -9): the
%% port wrapper sees stdin close and stops cactor-node.
owner_vm_dies(_Config) ->
    {P, PN} = cactor_test_lib:start_peer(list_to_atom("owner_" ++ os:getpid())),
    {ok, N} = erpc:call(PN, cactor, start_node, [orphan, #{}], ?T),
    {ok, CPid} = erpc:call(PN, cactor, os_pid, [N], ?T),
    VmPid = list_to_integer(erpc:call(PN, os, getpid, [], ?T)),
    ?assertEqual(pong, net_adm:ping(N)),
    erlang:monitor_node(N, true),
    ok = cactor_test_lib:kill_os(VmPid, "KILL"),
    receive {nodedown, N} -> ok after ?T -> ct:fail(c_node_survived) end,
    ok = wait_until(fun() -> not cactor_test_lib:os_alive(CPid) end, ?T),
    cactor_test_lib:stop_peer(P).

%% ---- nodes in the application's environment ----

%% C nodes configured in the environment (`{nodes, [{Name, Opts}]}') start
%% with the application, in order, can be stopped like the others, and
%% stop with it; a bad entry, a duplicate or a node that cannot start
%% makes the application's start fail, saying why.
configured_nodes(_Config) ->
    [_, Host] = string:split(atom_to_list(node()), "@"),
    A = list_to_atom("cfg_a@" ++ Host),
    B = list_to_atom("cfg_b@" ++ Host),
    ok = application:stop(cactor),
    try
        ok = application:set_env(cactor, nodes, [{cfg_a, #{threads => 1}},
                                                 {"cfg_b", [{threads, 1}]}]),
        ok = application:start(cactor),
        ?assertEqual(lists:sort([A, B]), lists:sort(cactor:which_nodes())),
        ?assertEqual([A, B], [Id || {Id, _, _, _} <- lists:reverse(supervisor:which_children(cactor_sup))]),
        ?assertEqual(hi, gen_server:call({echo, A}, hi, ?T)),
        ?assertEqual(pong, net_adm:ping(B)),
        ?assertMatch(#{schedulers := 1}, rpc:call(B, cactor, info, [], ?T)),
        ok = cactor:stop_node(A),
        ?assertEqual([B], cactor:which_nodes()),
        OsB = os_pid(B),
        ok = application:stop(cactor),
        ok = wait_until(fun() -> not cactor_test_lib:os_alive(OsB) end, ?T),
        Fails = [{[{"a@b@c", #{}}], "bad_nodes_config"},
                 {[{cfg_c, #{}}, {"cfg_c", #{}}], "duplicate"},
                 {[{cfg_d, 42}], "bad_nodes_config"},
                 {not_a_list, "not_a_list"},
                 {[{cfg_e, #{threads => 0}}], "exited_at_start"}],
        [begin
             ok = application:set_env(cactor, nodes, Cfg),
             {error, Why} = application:start(cactor),
             Text = lists:flatten(io_lib:format("~p", [Why])),
             ct:log("~p: ~s", [Cfg, Text]),
             ?assertNotEqual(nomatch, string:find(Text, Word))
         end || {Cfg, Word} <- Fails],
        ?assertEqual(undefined, whereis(cactor_sup))
    after
        application:set_env(cactor, nodes, []),
        {ok, _} = application:ensure_all_started(cactor)
    end.

%% ---- a node in a supervision tree of the user's own ----

%% cactor:child_spec/1,2: the node starts with the user's supervisor, is
%% restarted by its own supervisor when its OS process dies, stops with
%% the user's tree, and is none of the application's nodes.
own_supervisor(_Config) ->
    [_, Host] = string:split(atom_to_list(node()), "@"),
    A = list_to_atom("own_a@" ++ Host),
    B = list_to_atom("own_b@" ++ Host),
    SpecA = cactor:child_spec(own_a, #{threads => 1}),
    ?assertMatch(#{id := A, restart := permanent, type := supervisor}, SpecA),
    SpecB = cactor:child_spec([{name, "own_b"}, {threads, 1}, {restart, transient}]),
    ?assertMatch(#{id := B, restart := transient}, SpecB),
    ?assertEqual(ok, supervisor:check_childspecs([SpecA, SpecB])),
    ?assertError({badarg, _}, cactor:child_spec(#{threads => 1})),
    ?assertError({badarg, "a@b@c"}, cactor:child_spec("a@b@c", #{})),
    process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link(?MODULE, {own_sup, [SpecA, SpecB]}),
    ?assertEqual(pong, net_adm:ping(A)),
    ?assertEqual(hi, gen_server:call({echo, B}, hi, ?T)),
    ?assertEqual([], cactor:which_nodes()),
    %% kill -9: the node's own supervisor starts it again
    {A, NodeSup, supervisor, _} = lists:keyfind(A, 1, supervisor:which_children(Sup)),
    {ok, W} = cactor_node_sup:worker(NodeSup),
    #{os_pid := Os} = cactor_node:info(W),
    true = erlang:monitor_node(A, true),
    ok = cactor_test_lib:kill_os(Os, "KILL"),
    receive {nodedown, A} -> ok after ?T -> ct:fail(no_nodedown) end,
    ok = wait_until(fun() -> net_adm:ping(A) =:= pong end, 20000),
    ?assertMatch([{A, NodeSup, _, _}], [C || {Id, _, _, _} = C <- supervisor:which_children(Sup), Id =:= A]),
    %% the user's tree stops, and its nodes with it
    {ok, W2} = cactor_node_sup:worker(NodeSup),
    #{os_pid := Os2} = cactor_node:info(W2),
    exit(Sup, shutdown),
    receive {'EXIT', Sup, shutdown} -> ok after 30000 -> ct:fail(sup_did_not_stop) end,
    ok = wait_until(fun() -> not cactor_test_lib:os_alive(Os2) end, ?T),
    ?assertEqual(pang, net_adm:ping(A)),
    ?assertEqual(pang, net_adm:ping(B)).

%% The user's supervisor of own_supervisor/1.
init({own_sup, Specs}) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, Specs}}.
