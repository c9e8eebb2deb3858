#!/usr/bin/env escript
%%! -name cactor_demo@127.0.0.1 -hidden -start_epmd false
%% The Erlang demo of cactor (make demo, through scripts/demo.sh): an
%% Erlang node starts a C node under its supervisor, calls C actors (echo,
%% the example plugin's kv), calls C functions with rpc, crashes a C actor
%% and watches the C supervisor restart it, then kills the whole C node and
%% watches the Erlang supervisor restart it.
%%
%%   escript examples/erlang/demo.escript EBIN_DIR
%%
%% needs a private epmd (ERL_EPMD_PORT) and HOME: scripts/demo.sh sets
%% them up.
-mode(compile).

main([Ebin]) ->
    true = code:add_patha(Ebin),
    %% The C node's log lines come through the Erlang logger, tagged with
    %% its name; OTP's own crash and supervisor reports are left out.
    ok = logger:set_primary_config(level, info),
    ok = logger:add_primary_filter(no_otp_reports,
                                   {fun logger_filters:domain/2, {stop, sub, [otp]}}),
    ok = logger:update_formatter_config(default,
                                        #{single_line => true,
                                          template => ["      log ", {cactor_node, [cactor_node, " "], []},
                                                       level, ": ", msg, "\n"]}),
    try run() of
        ok -> say("done: everything stopped"), halt(0)
    catch C:E:S ->
            io:format("demo FAILED: ~p:~p~n  ~p~n", [C, E, S]),
            halt(1)
    end;
main(_) ->
    io:format("usage: demo.escript EBIN_DIR~n"),
    halt(2).

%% ~p on one line (up to 300 columns)
say(Fmt, Args) -> io:format(lists:flatten(["demo: ", string:replace(Fmt, "~p", "~300p", all), "~n"]), Args).
say(Text) -> say("~s", [Text]).

run() ->
    say("this Erlang node is ~p", [node()]),
    Plugin = filename:join([code:priv_dir(cactor), "plugins", "example_plugin.so"]),
    Plugins = case filelib:is_regular(Plugin) of
                  true -> [Plugin];
                  false -> say("(no example plugin at ~s: its parts are skipped)", [Plugin]), []
              end,
    {ok, N} = cactor:start_node(demo_cnode, #{threads => 2, plugins => Plugins}),
    {ok, #{os_pid := OsPid, ready_by := By}} = cactor:node_info(N),
    say("started the C node ~p: cactor-node, OS pid ~p, supervised by this node "
        "(it answered ~p)", [N, OsPid, By]),
    say("net_adm:ping(~p) -> ~p", [N, net_adm:ping(N)]),

    %% echo: a message and a gen_server call
    {echo, N} ! {self(), {hello, "from Erlang", 42}},
    receive {echo, T} -> say("sent {self(), {hello, ...}} to {echo, ~p}: got back ~p", [N, T])
    after 5000 -> error(no_echo)
    end,
    say("gen_server:call({echo, ~p}, #{ask => 1}) -> ~p", [N, gen_server:call({echo, N}, #{ask => 1})]),

    %% the plugin's actor and rpc functions
    case Plugins of
        [] -> ok;
        _ ->
            ok = gen_server:call({kv, N}, {put, colour, <<"blue">>}),
            say("gen_server:call({kv, ~p}, {put, colour, <<\"blue\">>}) -> ok", [N]),
            say("gen_server:call({kv, ~p}, {get, colour}) -> ~p", [N, gen_server:call({kv, N}, {get, colour})]),
            say("rpc:call(~p, example, add, [2, 40]) -> ~p", [N, rpc:call(N, example, add, [2, 40])]),
            say("erpc:call(~p, example, reverse, [<<\"cactor\">>]) -> ~p",
                [N, erpc:call(N, example, reverse, [<<"cactor">>])]),
            say("rpc:call(~p, example, get, [colour]) -> ~p (a C function answered by kv)",
                [N, rpc:call(N, example, get, [colour])])
    end,
    say("rpc:call(~p, cactor, info, []) -> ~p", [N, rpc:call(N, cactor, info, [])]),

    %% crash a C actor: the C node's own supervisor restarts it
    Old = rpc:call(N, erlang, whereis, [echo]),
    Ref = erlang:monitor(process, Old),
    say("crashing the C actor echo (~p) with exit(Pid, kill)", [Old]),
    exit(Old, kill),
    receive {'DOWN', Ref, process, Old, Why} -> say("'DOWN' from echo: ~p", [Why])
    after 5000 -> error(no_down)
    end,
    New = wait(fun() -> case rpc:call(N, erlang, whereis, [echo]) of
                            P when is_pid(P), P =/= Old -> {ok, P};
                            _ -> no
                        end
               end, 100),
    say("the C supervisor restarted echo: new pid ~p; it answers: ~p",
        [New, gen_server:call({echo, N}, still_there)]),
    say("the C supervisor, as Erlang's supervisor module sees it: "
        "supervisor:which_children({cactor_sup, ~p}) ->", [N]),
    [say("    ~p", [Child]) || Child <- supervisor:which_children({cactor_sup, N})],

    %% kill the whole C node: the Erlang supervisor restarts it
    erlang:monitor_node(N, true),
    say("kill -9 ~p (the cactor-node OS process)", [OsPid]),
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    receive {nodedown, N} -> say("nodedown ~p", [N]) after 5000 -> error(no_nodedown) end,
    NewOs = wait(fun() -> case cactor:os_pid(N) of
                              {ok, P} when P =/= OsPid -> {ok, P};
                              _ -> no
                          end
                 end, 100),
    say("the Erlang supervisor restarted ~p: OS pid ~p; ping -> ~p; echo answers ~p",
        [N, NewOs, net_adm:ping(N), gen_server:call({echo, N}, back_again)]),

    ok = cactor:stop_node(N),
    say("cactor:stop_node(~p) -> ok (SIGTERM); nodes now: ~p", [N, nodes(hidden)]),
    ok.

wait(_F, 0) -> error(timeout);
wait(F, N) ->
    case F() of
        {ok, V} -> V;
        _ -> timer:sleep(100), wait(F, N - 1)
    end.
