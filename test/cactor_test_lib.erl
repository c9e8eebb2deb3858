%% Helpers of the cactor Common Test suites: the private environment set
%% up by cactor_ct_dist, peers, bounded waits, OS processes, a logger
%% handler that forwards events to a test process.
-module(cactor_test_lib).

-export([env/0, peer_env/0, start_peer/1, start_peer/2, stop_peer/1,
         wait_until/2, wait_value/2, recv/2, no_msg/2, flush/0,
         open_wrapped/3, wrapped_os_pid/2, os_alive/1, kill_os/2,
         plugin/0, whereis_c/2, echo/3,
         capture_logs/0, stop_capture_logs/0]).
%% logger handler callback
-export([log/2]).

-spec env() -> #{home := string(), cookie := atom(), epmd_port := integer(),
                 scratch := string()}.
env() ->
    case persistent_term:get(cactor_test_env, undefined) of
        undefined -> error("cactor_ct_dist hook not installed (rebar.config ct_opts ct_hooks)");
        E -> E
    end.

%% Environment of every Erlang node or C node started by a suite.
-spec peer_env() -> [{string(), string()}].
peer_env() ->
    #{home := Home, epmd_port := Port} = env(),
    [{"HOME", Home}, {"ERL_EPMD_PORT", integer_to_list(Port)},
     {"ERL_EPMD_ADDRESS", "127.0.0.1"}].

%% A peer Erlang node Name@127.0.0.1, connected to this node by
%% distribution, with the same code path, HOME and cookie.
-spec start_peer(atom()) -> {pid(), node()}.
start_peer(Name) ->
    start_peer(Name, []).

-spec start_peer(atom(), [string()]) -> {pid(), node()}.
start_peer(Name, Args) ->
    #{cookie := Cookie} = env(),
    Paths = lists:append([["-pa", D] || D <- code:get_path(), is_ours(D)]),
    {ok, P, Node} = peer:start(#{name => Name, host => "127.0.0.1", longnames => true,
                                 env => peer_env(), wait_boot => 20000,
                                 args => ["-start_epmd", "false", "-setcookie", atom_to_list(Cookie) | Paths ++ Args]}),
    {P, Node}.

is_ours(D) ->
    %% everything but OTP's own directories
    not lists:prefix(code:root_dir(), D) andalso D =/= ".".

-spec stop_peer(pid()) -> ok.
stop_peer(P) ->
    try peer:stop(P) catch _:_ -> ok end.

%% Poll Fun (-> boolean()) every 50 ms until true; ok or error(timeout).
-spec wait_until(fun(() -> boolean()), pos_integer()) -> ok.
wait_until(Fun, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_until_(Fun, Deadline).

wait_until_(Fun, Deadline) ->
    case Fun() of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error({wait_until, timeout, erlang:fun_info(Fun, name)});
                false -> timer:sleep(50), wait_until_(Fun, Deadline)
            end
    end.

%% Poll Fun (-> {ok, V} | _) until {ok, V}; V.
-spec wait_value(fun(() -> term()), pos_integer()) -> term().
wait_value(Fun, Timeout) ->
    Self = self(),
    Ref = make_ref(),
    ok = wait_until(fun() ->
                            case Fun() of
                                {ok, V} -> Self ! {Ref, V}, true;
                                _ -> false
                            end
                    end, Timeout),
    receive {Ref, V} -> V after 0 -> error(lost_value) end.

%% The first message Match accepts, within Timeout ms (other messages stay).
-spec recv(fun((term()) -> boolean()), timeout()) -> term().
recv(Match, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    recv_(Match, Deadline, []).

recv_(Match, Deadline, Skipped) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        M ->
            case Match(M) of
                true -> [self() ! S || S <- lists:reverse(Skipped)], M;
                false -> recv_(Match, Deadline, [M | Skipped])
            end
    after Left ->
        [self() ! S || S <- lists:reverse(Skipped)],
        error({recv_timeout, erlang:process_info(self(), messages)})
    end.

%% No message Match accepts arrives within Timeout ms.
-spec no_msg(fun((term()) -> boolean()), timeout()) -> ok.
no_msg(Match, Timeout) ->
    try recv(Match, Timeout) of
        M -> error({unexpected, M})
    catch error:{recv_timeout, _} -> ok
    end.

-spec flush() -> ok.
flush() ->
    receive _ -> flush() after 0 -> ok end.

%% Run Exe through a /bin/sh wrapper that prints its OS pid and sends it
%% SIGTERM when the port's stdin closes (this VM or the port's owner
%% gone): nothing it starts outlives the test run.
-spec open_wrapped(string(), [string()], list()) -> port().
open_wrapped(Exe, Args, Opts) ->
    open_port({spawn_executable, "/bin/sh"},
              [{args, ["-c", cactor_node:wrapper(), "wrapped", Exe | Args]}, {line, 4096}, binary,
               exit_status, stderr_to_stdout, use_stdio, hide | Opts]).

-spec wrapped_os_pid(port(), timeout()) -> integer().
wrapped_os_pid(Port, Timeout) ->
    receive
        {Port, {data, {eol, <<"cactor-node-pid ", P/binary>>}}} -> binary_to_integer(P);
        {Port, {exit_status, S}} -> error({exited, S})
    after Timeout -> error(no_pid)
    end.

-spec os_alive(integer()) -> boolean().
os_alive(OsPid) ->
    %% kill -0, without a shell's quoting
    [] =:= os:cmd("kill -0 " ++ integer_to_list(OsPid) ++ " 2>&1").

-spec kill_os(integer(), string()) -> ok.
kill_os(OsPid, Sig) ->
    [] = os:cmd("kill -" ++ Sig ++ " " ++ integer_to_list(OsPid) ++ " 2>&1"),
    ok.

%% The example plugin, as the rebar3 pre-hook copied it.
-spec plugin() -> string().
plugin() ->
    P = filename:join([code:priv_dir(cactor), "plugins", "example_plugin.so"]),
    case filelib:is_regular(P) of
        true -> P;
        false -> error({no_plugin, P})
    end.

%% A registered name's pid on a C node, through rpc (erlang:whereis/1).
-spec whereis_c(node(), atom()) -> pid() | undefined.
whereis_c(Node, Name) ->
    rpc:call(Node, erlang, whereis, [Name], 10000).

%% One echo round trip of Term: what came back.
-spec echo(node(), term(), timeout()) -> term().
echo(Node, Term, Timeout) ->
    Tag = make_ref(),
    {echo, Node} ! {self(), {Tag, Term}},
    receive {echo, {Tag, Got}} -> Got
    after Timeout -> error({no_echo, Node})
    end.

%% Logger events reach the calling process as {log, Event} until
%% stop_capture_logs/0.
-spec capture_logs() -> ok.
capture_logs() ->
    _ = logger:remove_handler(cactor_test_capture),
    ok = logger:add_handler(cactor_test_capture, ?MODULE,
                            #{level => all, config => #{to => self()}}).

-spec stop_capture_logs() -> ok.
stop_capture_logs() ->
    _ = logger:remove_handler(cactor_test_capture),
    ok.

-spec log(logger:log_event(), logger:handler_config()) -> term().
log(Event, #{config := #{to := To}}) ->
    To ! {log, Event}.
