%% dist_driver: the load generator of bench/dist (bench/dist/run.sh starts
%% it with erl -noshell). For every test it runs each contender in turn
%% (so that the machine's load hits them alike), Runs times, and writes:
%%
%%   OutDir/results.tsv  one line per measurement
%%   OutDir/results.dat  medians, for gnuplot (bench/dist/plot.gp)
%%   OutDir/results.md   the tables for BENCHMARKS.md
%%
%% main([OutDir, Runs, Ms, ClkTck, "Label=Node=OsPid" ...]): OsPid "rpc"
%% asks an Erlang node for os:getpid(). The labels erlang, ei and cactor
%% get the ratios and targets. DIST_TESTS (e.g. "seq,hash100") selects
%% tests by kind.
%%
%% The kinds {tuned, Kind} (Kind_tuned in DIST_TESTS) repeat a test with
%% the driver's end of the connection tuned for throughput: delay_send
%% and a 64 KiB user-space buffer on the distribution port's socket (what
%% kernel's inet_dist_connect_options would set for every connection).
%% With OTP's defaults the driver's inet driver writes every message to
%% the socket as it is sent and reads answers of 1 KiB one at a time, so
%% that in the streaming tests it writes once per request and is the
%% limit for all three servers; tuned, it gathers what is sent between two
%% polls into one write, and the servers' own costs show.
-module(dist_driver).

-export([main/1]).

-define(INFLIGHT, 100).
-define(CALLERS, 100).
-define(REPLY_TIMEOUT, 30000).

main([OutDir, RunsS, MsS, ClkS | Specs]) ->
    try
        run(OutDir, list_to_integer(RunsS), list_to_integer(MsS), list_to_integer(ClkS), Specs),
        halt(0)
    catch
        C:R:St ->
            io:format(standard_error, "dist_driver: ~p:~p~n~p~n", [C, R, St]),
            halt(1)
    end.

run(OutDir, Runs, Ms, Clk, Specs) ->
    Contenders = [contender(S) || S <- Specs],
    Load0 = loadavg(),
    Small = {ping, 42},
    Kib = rand_bytes(1024),
    Big = rand_bytes(65536),
    AllTests = [{seq, "small", Small}, {seq, "1KiB", Kib},
             {inflight, "small", Small}, {inflight, "1KiB", Kib},
             {oneway, "small", Small}, {oneway, "1KiB", Kib},
             {call100, "small", Small}, {call100, "1KiB", Kib},
             {{tuned, inflight}, "small", Small}, {{tuned, inflight}, "1KiB", Kib},
             {{tuned, oneway}, "small", Small}, {{tuned, oneway}, "1KiB", Kib},
             {{tuned, call100}, "small", Small}, {{tuned, call100}, "1KiB", Kib},
             {hash100, "64KiB", Big}, {erpc100, "small", Small}, {erpc_hash100, "64KiB", Big}],
    Tests = case os:getenv("DIST_TESTS") of
                Only when Only =:= false; Only =:= "" -> AllTests;
                Only -> [T || {K, _, _} = T <- AllTests,
                              lists:member(kind_name(K), string:lexemes(Only, ", "))]
            end,
    [warm_up(C, Big) || C <- Contenders],
    Rows = lists:append(
             [begin
                  io:format("run ~b/~b~n", [R, Runs]),
                  [measure(C, T, R, Ms, Clk) || {K, _, _} = T <- Tests, {L, _, _} = C <- Contenders,
                                                applies(K, L)]
              end || R <- lists:seq(1, Runs)]),
    Load1 = loadavg(),
    write_tsv(filename:join(OutDir, "results.tsv"), Rows),
    Summary = summarise(Contenders, Tests, Rows),
    write_dat(filename:join(OutDir, "results.dat"), Contenders, Summary),
    Md = markdown(Contenders, Summary, Runs, Ms, Load0, Load1),
    ok = file:write_file(filename:join(OutDir, "results.md"), Md),
    io:put_chars(Md).

contender(Spec) ->
    [Label, NodeS, PidS] = string:split(Spec, "=", all),
    Node = list_to_atom(NodeS),
    true = net_kernel:connect_node(Node) orelse error({cannot_connect, Node}),
    OsPid = case PidS of
                "rpc" -> rpc:call(Node, os, getpid, []);
                _ -> PidS
            end,
    {Label, Node, OsPid}.

rand_bytes(N) -> list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, N)]).

loadavg() ->
    {ok, B} = file:read_file("/proc/loadavg"),
    [A1, A5, A15 | _] = string:split(string:trim(B), " ", all),
    iolist_to_binary([A1, " ", A5, " ", A15]).

warm_up({Label, Node, _}, Big) ->
    Echo = {echo, Node},
    [begin Echo ! {self(), {warm, I}}, receive {echo, {warm, I}} -> ok after ?REPLY_TIMEOUT -> error({no_echo, Label}) end end
     || I <- lists:seq(1, 2000)],
    {ping, 1} = gen_server:call(Echo, {ping, 1}, ?REPLY_TIMEOUT),
    Want = crypto:hash(md5, Big),
    Want = gen_server:call({hash, Node}, Big, ?REPLY_TIMEOUT),
    Echo ! {report, self()},
    receive {count, _} -> ok after ?REPLY_TIMEOUT -> error({no_count, Label}) end.

%% ---- CPU time from /proc/PID/stat (all threads), in clock ticks ----

cpu_ticks(OsPid) ->
    {ok, B} = file:read_file("/proc/" ++ OsPid ++ "/stat"),
    %% The fields after the command name, which ends with the last ')'.
    [_, Rest] = string:split(B, ")", trailing),
    Fields = string:lexemes(Rest, " "),
    %% Field 3 (state) is Fields[1]; utime is field 14, stime field 15.
    binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)).

%% Run Fun() (which returns the number of messages) with the clock, both
%% sides' CPU time and both sides' system calls around it. Returns
%% {N, Us, ServerTicks, DriverTicks, {ServerReads, ServerWrites,
%% DriverReads, DriverWrites}}.
sampled(OsPid, Fun) ->
    Me = os:getpid(),
    {SR0, SW0} = syscalls(OsPid), {DR0, DW0} = syscalls(Me),
    S0 = cpu_ticks(OsPid), D0 = cpu_ticks(Me), T0 = erlang:monotonic_time(microsecond),
    N = Fun(),
    T1 = erlang:monotonic_time(microsecond), S1 = cpu_ticks(OsPid), D1 = cpu_ticks(Me),
    {SR1, SW1} = syscalls(OsPid), {DR1, DW1} = syscalls(Me),
    {N, T1 - T0, S1 - S0, D1 - D0, {SR1 - SR0, SW1 - SW0, DR1 - DR0, DW1 - DW0}}.

%% {read, write} system calls of OS process OsPid so far (/proc/PID/io's
%% syscr and syscw: read/readv and write/writev; recv is not counted, so an
%% Erlang server, whose inet driver reads with recv, shows 0 reads).
syscalls(OsPid) ->
    {ok, B} = file:read_file("/proc/" ++ OsPid ++ "/io"),
    Kv = [list_to_tuple(string:lexemes(L, ": ")) || L <- string:lexemes(binary_to_list(B), "\n")],
    {list_to_integer(proplists:get_value("syscr", Kv)), list_to_integer(proplists:get_value("syscw", Kv))}.

measure({Label, Node, OsPid}, {Kind, Size, Term}, Run, Ms, Clk) ->
    erlang:garbage_collect(),
    W0 = batch_waits(Label, Node),
    {N, Us, STk, DTk, {SR, SW, DR, DW}} = test(Kind, Node, OsPid, Term, Ms),
    Waits = batch_waits(Label, Node) - W0,
    Rate = N * 1.0e6 / Us,
    SrvUs = STk * 1.0e6 / Clk / max(N, 1),
    SrvPct = STk * 1.0e8 / Clk / Us,
    DrvPct = DTk * 1.0e8 / Clk / Us,
    PerMsg = fun(C) -> C / max(N, 1) end,
    io:format("  ~-8s ~-12s ~-6s run ~b: ~12.1f msg/s  server ~8.2f us/msg  server ~5.1f%  driver ~5.1f%"
              "  syscalls/msg server r ~.2f w ~.2f driver r ~.2f w ~.2f~s~n",
              [Label, kind_name(Kind), Size, Run, Rate, SrvUs, SrvPct, DrvPct,
               PerMsg(SR), PerMsg(SW), PerMsg(DR), PerMsg(DW),
               [io_lib:format("  batch waits/msg ~.3f", [PerMsg(Waits)]) || Label =:= "cactor"]]),
    #{label => Label, test => {Kind, Size}, run => Run, n => N, us => Us,
      rate => Rate, srv_us => SrvUs, srv_pct => SrvPct, drv_pct => DrvPct}.

%% cactor-node's batch waits so far (cactor:info/0), taken outside the
%% measured window; 0 for the others.
batch_waits("cactor", Node) ->
    case rpc:call(Node, cactor, info, [], 5000) of
        #{batch_waits := W} -> W;
        _ -> 0
    end;
batch_waits(_, _) -> 0.

deadline(Ms) -> erlang:monotonic_time(millisecond) + Ms.
past(D) -> erlang:monotonic_time(millisecond) >= D.

test({tuned, Kind}, Node, OsPid, T, Ms) ->
    tuned(Node, fun() -> run_test(Kind, Node, OsPid, T, Ms) end);
test(Kind, Node, OsPid, T, Ms) ->
    run_test(Kind, Node, OsPid, T, Ms).

kind_name({tuned, K}) -> atom_to_list(K) ++ "_tuned";
kind_name(K) -> atom_to_list(K).

%% Run Fun with the driver's socket to Node tuned for throughput, then as
%% it was.
tuned(Node, Fun) ->
    Tuned = [{delay_send, true}, {buffer, 65536}],
    Keys = proplists:get_keys(Tuned),
    {Node, Port} = lists:keyfind(Node, 1, erlang:system_info(dist_ctrl)),
    {ok, Was} = inet:getopts(Port, Keys),
    ok = inet:setopts(Port, Tuned),
    {ok, Now} = inet:getopts(Port, Keys),
    [] = Tuned -- Now,
    try Fun() after ok = inet:setopts(Port, Was) end.

run_test(seq, Node, OsPid, T, Ms) ->
    Echo = {echo, Node},
    sampled(OsPid, fun() -> seq(Echo, T, deadline(Ms), 0) end);
run_test(inflight, Node, OsPid, T, Ms) ->
    Echo = {echo, Node},
    sampled(OsPid, fun() ->
                           [Echo ! {self(), T} || _ <- lists:seq(1, ?INFLIGHT)],
                           inflight(Echo, T, deadline(Ms), ?INFLIGHT, 0)
                   end);
run_test(oneway, Node, OsPid, T, Ms) ->
    Echo = {echo, Node},
    _ = report(Echo), % reset the count
    sampled(OsPid, fun() ->
                           Sent = casts(Echo, {cast, T}, deadline(Ms), 0),
                           case report(Echo) of
                               Sent -> Sent;
                               Got -> error({cast_count, Node, sent, Sent, counted, Got})
                           end
                   end);
run_test(call100, Node, OsPid, T, Ms) ->
    Echo = {echo, Node},
    sampled(OsPid, fun() -> callers(fun() -> gen_server:call(Echo, T, ?REPLY_TIMEOUT) end, T, Ms) end);
run_test(hash100, Node, OsPid, Bin, Ms) ->
    Want = crypto:hash(md5, Bin),
    Hash = {hash, Node},
    sampled(OsPid, fun() -> callers(fun() -> gen_server:call(Hash, Bin, ?REPLY_TIMEOUT) end, Want, Ms) end);
run_test(erpc100, Node, OsPid, T, Ms) ->
    sampled(OsPid, fun() ->
                           callers(fun() -> erpc:call(Node, dist_echo, id, [T], ?REPLY_TIMEOUT) end, T, Ms)
                   end);
run_test(erpc_hash100, Node, OsPid, Bin, Ms) ->
    Want = crypto:hash(md5, Bin),
    sampled(OsPid, fun() ->
                           callers(fun() -> erpc:call(Node, dist_echo, md5, [Bin], ?REPLY_TIMEOUT) end,
                                   Want, Ms)
                   end).

%% erpc runs a function in a process spawned for the call (spawn_request),
%% which the blocking ei node does not offer.
applies(erpc100, "ei") -> false;
applies(erpc_hash100, "ei") -> false;
applies(_, _) -> true.

seq(Echo, T, D, N) ->
    Echo ! {self(), T},
    receive {echo, _} -> ok after ?REPLY_TIMEOUT -> error({no_echo, Echo}) end,
    case past(D) of
        true -> N + 1;
        false -> seq(Echo, T, D, N + 1)
    end.

%% Keep Out requests in flight until the deadline, then drain.
inflight(_Echo, _T, _D, 0, N) ->
    N;
inflight(Echo, T, D, Out, N) ->
    receive {echo, _} -> ok after ?REPLY_TIMEOUT -> error({no_echo, Echo}) end,
    case past(D) of
        true -> inflight(Echo, T, D, Out - 1, N + 1);
        false -> Echo ! {self(), T}, inflight(Echo, T, D, Out, N + 1)
    end.

casts(Echo, Msg, D, N) ->
    [Echo ! Msg || _ <- lists:seq(1, 1000)],
    case past(D) of
        true -> N + 1000;
        false -> casts(Echo, Msg, D, N + 1000)
    end.

report(Echo) ->
    Echo ! {report, self()},
    receive {count, C} -> C after 120000 -> error({no_count, Echo}) end.

%% ?CALLERS processes (DIST_CALLERS, for a look at fewer; the tests'
%% names say 100 regardless), each calling Call() until the deadline; each
%% answer must be Want.
callers(Call, Want, Ms) ->
    D = deadline(Ms),
    N = case os:getenv("DIST_CALLERS") of
            false -> ?CALLERS;
            S -> list_to_integer(S)
        end,
    Pids = [spawn_monitor(fun() -> exit({done, call_loop(Call, Want, D, 0)}) end)
            || _ <- lists:seq(1, N)],
    lists:sum([receive
                   {'DOWN', Ref, process, Pid, {done, C}} -> C;
                   {'DOWN', Ref, process, Pid, Why} -> error({caller_failed, Why})
               after Ms + 120000 -> error(caller_hangs)
               end || {Pid, Ref} <- Pids]).

call_loop(Call, Want, D, N) ->
    Want = Call(),
    case past(D) of
        true -> N + 1;
        false -> call_loop(Call, Want, D, N + 1)
    end.

%% ---- summaries ----

median(L) ->
    S = lists:sort(L),
    Len = length(S),
    case Len rem 2 of
        1 -> lists:nth(Len div 2 + 1, S);
        0 -> (lists:nth(Len div 2, S) + lists:nth(Len div 2 + 1, S)) / 2
    end.

stat(Rows, Key) ->
    V = [maps:get(Key, R) || R <- Rows],
    {median(V), lists:min(V), lists:max(V)}.

summarise(Contenders, Tests, Rows) ->
    [{{K, S}, [{L, summary([R || R <- Rows, maps:get(label, R) =:= L,
                                 maps:get(test, R) =:= {K, S}])}
               || {L, _, _} <- Contenders]}
     || {K, S, _} <- Tests].

summary([]) ->
    none; % the test does not apply to the contender
summary(Rows) ->
    #{rate => stat(Rows, rate), srv_us => stat(Rows, srv_us),
      srv_pct => stat(Rows, srv_pct), drv_pct => stat(Rows, drv_pct)}.

write_tsv(File, Rows) ->
    Lines = ["contender\ttest\tsize\trun\tmessages\twall_us\trate_per_s\tserver_us_per_msg\t"
             "server_cpu_pct\tdriver_cpu_pct\n"
             | [io_lib:format("~s\t~s\t~s\t~b\t~b\t~b\t~.1f\t~.3f\t~.1f\t~.1f~n",
                              [L, kind_name(K), S, Run, N, Us, Rate, SU, SP, DP])
                || #{label := L, test := {K, S}, run := Run, n := N, us := Us, rate := Rate,
                     srv_us := SU, srv_pct := SP, drv_pct := DP} <- Rows]],
    ok = file:write_file(File, Lines).

test_name({{tuned, K}, S}) -> test_name({K, S}) ++ ", tuned driver";
test_name({seq, S}) -> "sequential round trip, " ++ S;
test_name({inflight, S}) -> "round trips, 100 in flight, " ++ S;
test_name({oneway, S}) -> "one-way casts + report, " ++ S;
test_name({call100, S}) -> "gen_server:call, 100 callers, " ++ S;
test_name({hash100, S}) -> "hash call (MD5), 100 callers, " ++ S;
test_name({erpc100, S}) -> "erpc:call of a function, 100 callers, " ++ S;
test_name({erpc_hash100, S}) -> "erpc:call of MD5, 100 callers, " ++ S.

short_name({{tuned, K}, S}) -> short_name({K, S}) ++ " tuned";
short_name({seq, S}) -> "seq " ++ S;
short_name({inflight, S}) -> "100-flight " ++ S;
short_name({oneway, S}) -> "one-way " ++ S;
short_name({call100, S}) -> "call100 " ++ S;
short_name({hash100, S}) -> "hash100 " ++ S;
short_name({erpc100, S}) -> "erpc100 " ++ S;
short_name({erpc_hash100, S}) -> "erpc-md5 " ++ S.

%% gnuplot data: test, then for each contender the median rate relative
%% to the first contender, then each contender's median server us/msg.
write_dat(File, Contenders, Summary) ->
    Labels = [L || {L, _, _} <- Contenders],
    Head = ["# test", [[" rate_rel_", L] || L <- Labels], [[" srv_us_", L] || L <- Labels], "\n"],
    Lines = [begin
                 Base = med(PerC, hd(Labels), rate),
                 Rel = [dat(ratio(med(PerC, L, rate), Base)) || L <- Labels],
                 Cpu = [dat(med(PerC, L, srv_us)) || L <- Labels],
                 ["\"", short_name(T), "\"", Rel, Cpu, "\n"]
             end || {T, PerC} <- Summary],
    ok = file:write_file(File, [Head | Lines]).

dat(undefined) -> " NaN"; % gnuplot leaves it out
dat(X) -> io_lib:format(" ~.4f", [X]).

%% ---- markdown ----

fmt_rate(X) when X >= 1.0e6 -> io_lib:format("~.2f M", [X / 1.0e6]);
fmt_rate(X) when X >= 1.0e3 -> io_lib:format("~.1f k", [X / 1.0e3]);
fmt_rate(X) -> integer_to_list(round(X)).

fmt3(F, {Med, Min, Max}) -> [F(Med), " (", F(Min), "-", F(Max), ")"].

fmt_us(X) when X >= 100 -> integer_to_list(round(X));
fmt_us(X) when X >= 10 -> io_lib:format("~.1f", [X]);
fmt_us(X) -> io_lib:format("~.2f", [X]).

fmt_pct(undefined) -> "n/a";
fmt_pct(X) -> integer_to_list(round(X)).

at_least(R, Min) -> is_number(R) andalso R >= Min.

ratio(A, B) when is_number(A), is_number(B), B > 0 -> A / B;
ratio(_, _) -> undefined.

fmt_ratio(undefined) -> "n/a";
fmt_ratio(R) -> io_lib:format("~.2fx", [R]).

%% Throughput targets: [{Other, Min}] for cactor's median / Other's; a
%% repeat with the driver tuned has the test's own.
rate_targets({{tuned, K}, S}) -> rate_targets({K, S});
rate_targets({seq, _}) -> [{"erlang", 1.0}, {"ei", 1.0}];
rate_targets({inflight, _}) -> [{"erlang", 1.3}, {"ei", 1.0}];
rate_targets({oneway, _}) -> [{"erlang", 1.3}, {"ei", 1.0}];
rate_targets({call100, _}) -> [];
rate_targets({hash100, _}) -> [{"ei", 1.7}];
rate_targets({erpc100, _}) -> [];
rate_targets({erpc_hash100, _}) -> [].

cpu_target({{tuned, K}, S}) -> cpu_target({K, S});
cpu_target({hash100, _}) -> none;
cpu_target({erpc100, _}) -> none;
cpu_target({erpc_hash100, _}) -> none;
cpu_target(_) -> 0.25.

%% A median; undefined where the test does not apply.
med(PerC, L, Key) ->
    case proplists:get_value(L, PerC) of
        M when is_map(M) -> element(1, maps:get(Key, M));
        _ -> undefined
    end.

%% A cell: median (min-max), or n/a.
cell(F, PerC, L, Key) ->
    case proplists:get_value(L, PerC) of
        M when is_map(M) -> fmt3(F, maps:get(Key, M));
        _ -> "n/a"
    end.

markdown(Contenders, Summary, Runs, Ms, Load0, Load1) ->
    Labels = [L || {L, _, _} <- Contenders],
    Has = lists:all(fun(L) -> lists:member(L, Labels) end, ["erlang", "ei", "cactor"]),
    Head1 = ["| test | ", lists:join(" | ", [[L, " msg/s"] || L <- Labels]),
             " | cactor / erlang | cactor / ei | target | status |\n",
             "|---|", [["---|"] || _ <- Labels], "---|---|---|---|\n"],
    Rows1 = [begin
                 Cells = [cell(fun fmt_rate/1, PerC, L, rate) || L <- Labels],
                 {RE, RI, Tgt, St} =
                     case Has of
                         true ->
                             C = med(PerC, "cactor", rate),
                             RE0 = ratio(C, med(PerC, "erlang", rate)),
                             RI0 = ratio(C, med(PerC, "ei", rate)),
                             Ts = rate_targets(T),
                             Ok = lists:all(fun({O, Min}) -> at_least(ratio(C, med(PerC, O, rate)), Min) end, Ts),
                             TgtS = case Ts of
                                        [] -> "(none)";
                                        _ -> lists:join(", ", [io_lib:format(">= ~.1fx ~s", [Min, O]) || {O, Min} <- Ts])
                                    end,
                             StS = case {Ts, Ok} of {[], _} -> ""; {_, true} -> "PASS"; _ -> "MISSED" end,
                             {fmt_ratio(RE0), fmt_ratio(RI0), TgtS, StS};
                         false -> {"", "", "", ""}
                     end,
                 ["| ", test_name(T), " | ", lists:join(" | ", Cells), " | ", RE, " | ", RI, " | ", Tgt, " | ", St, " |\n"]
             end || {T, PerC} <- Summary],
    Head2 = ["| test | ", lists:join(" | ", [[L, " server us/msg"] || L <- Labels]),
             " | cactor / erlang | target | status | ",
             lists:join(" | ", [[L, ": server / driver CPU %"] || L <- Labels]), " |\n",
             "|---|", [["---|"] || _ <- Labels], "---|---|---|", [["---|"] || _ <- Labels], "\n"],
    Rows2 = [begin
                 Cells = [cell(fun fmt_us/1, PerC, L, srv_us) || L <- Labels],
                 Pcts = [[fmt_pct(med(PerC, L, srv_pct)), " / ", fmt_pct(med(PerC, L, drv_pct))] || L <- Labels],
                 {R, Tgt, St} =
                     case Has of
                         true ->
                             R0 = ratio(med(PerC, "cactor", srv_us), med(PerC, "erlang", srv_us)),
                             case cpu_target(T) of
                                 none -> {fmt_ratio(R0), "(none)", ""};
                                 Max -> {fmt_ratio(R0), io_lib:format("<= ~.2fx", [Max]),
                                         case is_number(R0) andalso R0 =< Max of
                                             true -> "PASS";
                                             false -> "MISSED"
                                         end}
                             end;
                         false -> {"", "", ""}
                     end,
                 ["| ", test_name(T), " | ", lists:join(" | ", Cells), " | ", R, " | ", Tgt, " | ", St, " | ",
                  lists:join(" | ", Pcts), " |\n"]
             end || {T, PerC} <- Summary],
    {{Y, Mo, Dd}, {H, Mi, _}} = calendar:universal_time(),
    iolist_to_binary(
      [io_lib:format("Run of ~4..0b-~2..0b-~2..0b ~2..0b:~2..0b UTC: ~b runs of every test, ~b ms each, "
                     "contenders interleaved test by test. Load average (1, 5, 15 min) ~s at the start, "
                     "~s at the end.~n~n",
                     [Y, Mo, Dd, H, Mi, Runs, Ms, Load0, Load1]),
       "Throughput, median (min-max) over the runs; ratios are of medians:\n\n",
       Head1, Rows1,
       "\nServer CPU (utime + stime of the server OS process, all threads, from /proc/PID/stat) per "
       "request handled, median (min-max); last columns: CPU time over wall time in % of one core "
       "(200 = both cores), medians:\n\n",
       Head2, Rows2]).
