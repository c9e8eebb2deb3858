%% @doc A gen_server that owns one cactor-node OS process through an Erlang
%% port.
%%
%% The port runs a small /bin/sh wrapper that starts cactor-node, prints
%% its OS pid, and sends it SIGTERM when the port's stdin closes: if this
%% Erlang node dies, however abruptly, its C node stops too.
%%
%% init/1 returns only once the C node serves: it waits for the ready line
%% on stdout ("cactor-node NAME ready on port P") and then for an answer
%% from the node, net_adm:ping (pong, answered by the C node's net_kernel)
%% or, failing that, a gen_server call to its built-in `echo' actor.
%%
%% Every other line the process writes (stdout and stderr, merged) goes to
%% the Erlang logger, at the level cactor gave it ("cactor warning: ..."),
%% with the metadata #{cactor_node => Node}.
%%
%% When the OS process exits (say, kill -9), this server stops with
%% {cactor_node_exited, Status}, or {shutdown, {cactor_node_exited, 0}}
%% for a clean stop (status 0: init:stop on the node, or SIGTERM from
%% elsewhere), and its supervisor (cactor_node_sup) starts it again as
%% the node's restart type says. terminate/2 stops the process with
%% SIGTERM, then SIGKILL after stop_timeout milliseconds.
-module(cactor_node).
-behaviour(gen_server).

-export([start_link/2, info/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).
-export([executable/1, args/2, wrapper/0]).

-define(START_TIMEOUT, 15000).
-define(STOP_TIMEOUT, 5000).

-record(st, {node :: node(),
             opts :: map(),
             port :: port() | undefined,
             os_pid :: integer() | undefined,
             listen_port :: integer() | undefined,
             ready_by :: ping | echo | ready_line | undefined,
             started :: integer(),
             partial = <<>> :: binary()}).

%% The wrapper: $@ is cactor-node and its arguments.
-define(WRAPPER,
        "exec 3<&0\n"
        "\"$@\" </dev/null 3<&- &\n"
        "child=$!\n"
        "echo \"cactor-node-pid $child\"\n"
        "( while read -r _; do :; done <&3; kill -TERM $child 2>/dev/null ) &\n"
        "watch=$!\n"
        "exec 3<&-\n"
        "wait $child 2>/dev/null\n"
        "rc=$?\n"
        "kill $watch 2>/dev/null\n"
        "exit $rc\n").

%% The /bin/sh script that runs "$@", prints "cactor-node-pid OSPID" and
%% sends the child SIGTERM when the port's stdin closes; the test library
%% wraps its other OS processes with it too.
-spec wrapper() -> string().
wrapper() -> ?WRAPPER.

-spec start_link(node(), map()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Node, Opts) ->
    gen_server:start_link(?MODULE, {Node, Opts}, []).

%% Figures of the running C node as this server sees them.
-spec info(pid()) -> #{node := node(), os_pid := integer(), port := integer(),
                       ready_by := atom(), uptime_ms := integer()}.
info(Pid) ->
    gen_server:call(Pid, info).

%% ---- gen_server ----

-spec init({node(), map()}) -> {ok, #st{}} | {stop, term()}.
init({Node, Opts}) ->
    process_flag(trap_exit, true),
    %% (no domain: the default handler drops domains other than [otp | _])
    logger:update_process_metadata(#{cactor_node => Node}),
    case executable(Opts) of
        {ok, Exe} -> start(Node, Opts, Exe, maps:get(start_attempts, Opts, 3));
        {error, Reason} -> {stop, Reason}
    end.

start(Node, Opts, Exe, Attempts) ->
    St0 = #st{node = Node, opts = Opts, started = erlang:monotonic_time(millisecond)},
    Timeout = maps:get(start_timeout, Opts, ?START_TIMEOUT),
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    Port = open(Exe, args(Node, Opts)),
    St = St0#st{port = Port},
    case await_ready(St, Deadline, []) of
        {ok, St1} ->
            case await_answer(St1, Deadline) of
                {ok, St2} ->
                    logger:info("cactor-node ~s ready (OS pid ~p, port ~p, answered by ~p)",
                                [Node, St2#st.os_pid, St2#st.listen_port, St2#st.ready_by]),
                    {ok, St2};
                {error, Reason} ->
                    _ = stop_os(St1),
                    {stop, Reason}
            end;
        {exited, Status, Lines} when Attempts > 1 ->
            %% After a crash, EPMD may still hold the old registration for
            %% a moment: try again.
            case lists:any(fun(L) -> binary:match(L, <<"EPMD">>) =/= nomatch end, Lines) of
                true ->
                    timer:sleep(300),
                    start(Node, Opts, Exe, Attempts - 1);
                false ->
                    {stop, {exited_at_start, Status, Lines}}
            end;
        {exited, Status, Lines} ->
            {stop, {exited_at_start, Status, Lines}};
        {timeout, St1} ->
            _ = stop_os(St1),
            {stop, {start_timeout, Node}}
    end.

-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call(info, _From, #st{} = St) ->
    {reply, #{node => St#st.node, os_pid => St#st.os_pid, port => St#st.listen_port,
              ready_by => St#st.ready_by,
              uptime_ms => erlang:monotonic_time(millisecond) - St#st.started}, St};
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, St) ->
    {noreply, St}.

-spec handle_info(term(), #st{}) -> {noreply, #st{}} | {stop, term(), #st{}}.
handle_info({Port, {data, Data}}, #st{port = Port} = St) ->
    {noreply, data(Data, St)};
handle_info({Port, {exit_status, 0}}, #st{port = Port, node = Node} = St) ->
    %% a clean stop (init:stop from Erlang, or SIGTERM from elsewhere): a
    %% transient node is not started again
    logger:notice("cactor-node ~s (OS pid ~p) stopped (status 0)", [Node, St#st.os_pid]),
    {stop, {shutdown, {cactor_node_exited, 0}}, St#st{port = undefined}};
handle_info({Port, {exit_status, Status}}, #st{port = Port, node = Node} = St) ->
    logger:error("cactor-node ~s (OS pid ~p) exited with status ~p~s",
                 [Node, St#st.os_pid, Status, signal_text(Status)]),
    {stop, {cactor_node_exited, Status}, St#st{port = undefined}};
handle_info({'EXIT', Port, Reason}, #st{port = Port} = St) ->
    {stop, {port_exit, Reason}, St#st{port = undefined}};
handle_info({'EXIT', _From, Reason}, St) ->
    %% our supervisor: terminate/2 stops the OS process
    {stop, Reason, St};
handle_info(_Other, St) ->
    {noreply, St}.

-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, St) ->
    _ = stop_os(St),
    ok.

%% ---- the executable and its arguments ----

%% cactor-node in the application's priv directory, unless the option
%% `executable' names another one.
-spec executable(map()) -> {ok, file:filename()} | {error, term()}.
executable(#{executable := Exe}) ->
    check_exe(Exe);
executable(_) ->
    case code:priv_dir(cactor) of
        {error, bad_name} ->
            {error, {no_priv_dir, "the cactor application is not on the code path "
                     "(add its ebin directory with -pa, or build it with rebar3 compile)"}};
        Dir ->
            check_exe(filename:join(Dir, "cactor-node"))
    end.

check_exe(Exe) ->
    case file:read_file_info(Exe) of
        {ok, _} -> {ok, Exe};
        {error, Why} ->
            {error, {no_executable, Exe, Why,
                     "build it with rebar3 compile (its pre-hook builds cactor-node with CMake)"}}
    end.

%% The command line of cactor-node for these options.
-spec args(node(), map()) -> [string()].
args(Node, Opts) ->
    Cookie = case maps:get(cookie, Opts, undefined) of
                 undefined -> erlang:get_cookie();
                 C -> C
             end,
    ["--name", atom_to_list(Node), "--cookie", str(Cookie)]
        ++ opt("--threads", maps:get(threads, Opts, undefined))
        ++ opt("--listen", maps:get(listen, Opts, undefined))
        ++ opt("--batch-us", maps:get(batch_us, Opts, undefined))
        ++ opt("--spin-us", maps:get(spin_us, Opts, undefined))
        ++ lists:append([["--load", str(P)] || P <- maps:get(plugins, Opts, [])])
        ++ [str(A) || A <- maps:get(extra_args, Opts, [])].

opt(_, undefined) -> [];
opt(Flag, V) -> [Flag, str(V)].

str(A) when is_atom(A) -> atom_to_list(A);
str(I) when is_integer(I) -> integer_to_list(I);
str(B) when is_binary(B) -> unicode:characters_to_list(B);
str(L) when is_list(L) -> L.

open(Exe, Args) ->
    %% The C node finds EPMD where this node does.
    Env = case init:get_argument(epmd_port) of
              {ok, [[P | _] | _]} -> [{"ERL_EPMD_PORT", P}];
              _ -> []
          end,
    open_port({spawn_executable, "/bin/sh"},
              [{args, ["-c", ?WRAPPER, "cactor-node", Exe | Args]},
               {env, Env}, {line, 4096}, binary, exit_status, stderr_to_stdout,
               use_stdio, hide]).

%% ---- start ----

%% Lines until the ready one; exit or timeout otherwise.
await_ready(#st{port = Port} = St, Deadline, Lines) ->
    receive
        {Port, {data, {eol, Line0}}} ->
            Line = <<(St#st.partial)/binary, Line0/binary>>,
            St1 = St#st{partial = <<>>},
            case parse(Line) of
                {os_pid, P} ->
                    await_ready(St1#st{os_pid = P}, Deadline, Lines);
                {ready, LPort} ->
                    {ok, St1#st{listen_port = LPort}};
                _ ->
                    log_line(Line),
                    await_ready(St1, Deadline, [Line | Lines])
            end;
        {Port, {data, {noeol, Part}}} ->
            await_ready(St#st{partial = <<(St#st.partial)/binary, Part/binary>>}, Deadline, Lines);
        {Port, {exit_status, Status}} ->
            {exited, Status, lists:reverse(Lines)}
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        {timeout, St}
    end.

await_answer(#st{opts = #{await := ready_line}} = St, _Deadline) ->
    {ok, St#st{ready_by = ready_line}};
await_answer(#st{node = Node} = St, Deadline) ->
    case net_adm:ping(Node) of
        pong ->
            {ok, St#st{ready_by = ping}};
        pang ->
            Left = Deadline - erlang:monotonic_time(millisecond),
            Tag = make_ref(),
            try gen_server:call({echo, Node}, {cactor_ready, Tag}, max(1, min(Left, 2000))) of
                {cactor_ready, Tag} -> {ok, St#st{ready_by = echo}};
                Other -> retry_answer(St, Deadline, {unexpected_answer, Other})
            catch
                exit:Why -> retry_answer(St, Deadline, Why)
            end
    end.

retry_answer(#st{node = Node} = St, Deadline, Why) ->
    case Deadline - erlang:monotonic_time(millisecond) of
        Left when Left > 100 ->
            timer:sleep(100),
            St1 = drain(St),
            case St1#st.port of
                undefined -> {error, {exited_at_start, Node}};
                _ -> await_answer(St1, Deadline)
            end;
        _ ->
            {error, {not_answering, Node, Why}}
    end.

%% Log what the process wrote meanwhile; notice an exit.
drain(#st{port = Port} = St) ->
    receive
        {Port, {data, Data}} -> drain(data(Data, St));
        {Port, {exit_status, _}} -> St#st{port = undefined}
    after 0 -> St
    end.

%% ---- output ----

data({eol, Line0}, St) ->
    Line = <<(St#st.partial)/binary, Line0/binary>>,
    case parse(Line) of
        {os_pid, P} -> St#st{os_pid = P, partial = <<>>};
        _ -> log_line(Line), St#st{partial = <<>>}
    end;
data({noeol, Part}, St) ->
    St#st{partial = <<(St#st.partial)/binary, Part/binary>>}.

parse(<<"cactor-node-pid ", P/binary>>) ->
    {os_pid, binary_to_integer(P)};
parse(<<"cactor-node ", Rest/binary>> = Line) ->
    case re:run(Rest, <<"^\\S+ ready on port ([0-9]+)$">>, [{capture, all_but_first, binary}]) of
        {match, [P]} -> {ready, binary_to_integer(P)};
        nomatch -> {other, Line}
    end;
parse(Line) ->
    {other, Line}.

log_line(<<"cactor error: ", T/binary>>) -> logger:error("~ts", [T]);
log_line(<<"cactor warning: ", T/binary>>) -> logger:warning("~ts", [T]);
log_line(<<"cactor info: ", T/binary>>) -> logger:info("~ts", [T]);
log_line(<<"cactor debug: ", T/binary>>) -> logger:debug("~ts", [T]);
log_line(<<>>) -> ok;
log_line(T) -> logger:notice("~ts", [T]).

signal_text(S) when S > 128 -> io_lib:format(" (signal ~p)", [S - 128]);
signal_text(_) -> "".

%% ---- stop ----

stop_os(#st{port = undefined}) ->
    ok;
stop_os(#st{port = Port, os_pid = OsPid, opts = Opts}) ->
    Timeout = maps:get(stop_timeout, Opts, ?STOP_TIMEOUT),
    case OsPid of
        undefined ->
            %% no pid yet: closing stdin makes the wrapper stop its child
            catch port_close(Port),
            ok;
        _ ->
            kill(OsPid, "TERM"),
            case wait_exit(Port, Timeout) of
                ok -> ok;
                timeout ->
                    logger:warning("cactor-node (OS pid ~p) ignored SIGTERM for ~p ms: SIGKILL",
                                   [OsPid, Timeout]),
                    kill(OsPid, "KILL"),
                    _ = wait_exit(Port, 5000),
                    catch port_close(Port),
                    ok
            end
    end.

wait_exit(Port, Timeout) ->
    receive
        {Port, {exit_status, _}} -> ok;
        {Port, {data, {eol, Line}}} -> log_line(Line), wait_exit(Port, Timeout);
        {Port, {data, _}} -> wait_exit(Port, Timeout)
    after Timeout -> timeout
    end.

kill(OsPid, Sig) when is_integer(OsPid) ->
    _ = os:cmd("kill -" ++ Sig ++ " " ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    ok.
