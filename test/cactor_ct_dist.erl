%% A Common Test hook (rebar.config: ct_opts ct_hooks) that makes the CT
%% node distributed, privately, for the whole run:
%%
%% - a scratch directory with a HOME holding its own .erlang.cookie (a
%%   random cookie; the CT node takes it with erlang:set_cookie/1, and
%%   every peer and C node the suites start gets it and that HOME);
%% - an epmd on 127.0.0.1 at this VM's EPMD port ($ERL_EPMD_PORT, which
%%   scripts/test.sh sets to a private port, else 4369): if none answers
%%   there, the hook starts one, through a wrapper that stops it when this
%%   VM goes away, and stops it by its pid at the end;
%% - the node name cactor_ct_<OS pid>@127.0.0.1 (long names, loopback).
%%
%% Why not rebar3's dist_node: rebar3 starts distribution before any hook
%% runs, so an epmd would have to be there already, outside the test run.
%% If the node is already alive (dist_node given, or -name), the hook only
%% writes the HOME and uses the node's cookie.
%%
%% The suites read what the hook set up with cactor_test_lib:env/0.
-module(cactor_ct_dist).

-export([id/1, init/2, terminate/1]).

-spec id(term()) -> atom().
id(_Opts) -> ?MODULE.

-spec init(term(), term()) -> {ok, map()}.
init(_Id, _Opts) ->
    Scratch = scratch_dir(),
    Home = filename:join(Scratch, "home"),
    ok = filelib:ensure_dir(filename:join(Home, "x")),
    EpmdPort = case init:get_argument(epmd_port) of
                   {ok, [[P | _] | _]} -> list_to_integer(P);
                   error -> 4369
               end,
    {Cookie, Epmd, Started} =
        case node() of
            nonode@nohost ->
                E = ensure_epmd(EpmdPort, Scratch),
                Name = list_to_atom("cactor_ct_" ++ os:getpid() ++ "@127.0.0.1"),
                {ok, _} = net_kernel:start(Name, #{name_domain => longnames}),
                C = list_to_atom("cactor_ct_" ++ integer_to_list(rand:uniform(1 bsl 40))),
                true = erlang:set_cookie(C),
                {C, E, true};
            _ ->
                {erlang:get_cookie(), undefined, false}
        end,
    CookieFile = filename:join(Home, ".erlang.cookie"),
    ok = file:write_file(CookieFile, atom_to_list(Cookie)),
    ok = file:change_mode(CookieFile, 8#400),
    Env = #{scratch => Scratch, home => Home, cookie => Cookie, epmd_port => EpmdPort},
    persistent_term:put(cactor_test_env, Env),
    ct:log("cactor_ct_dist: node ~p, epmd 127.0.0.1:~p (~s), HOME ~s",
           [node(), EpmdPort, case Epmd of undefined -> "found"; _ -> "started" end, Home]),
    {ok, #{env => Env, epmd => Epmd, started_dist => Started}}.

-spec terminate(map()) -> ok.
terminate(#{env := #{scratch := Scratch}, epmd := Epmd, started_dist := Started}) ->
    %% C nodes first: they are registered with epmd
    _ = application:stop(cactor),
    _ = Started andalso net_kernel:stop(),
    case Epmd of
        undefined -> ok;
        {Owner, OsPid} ->
            _ = os:cmd("kill " ++ integer_to_list(OsPid)),
            Owner ! stop
    end,
    _ = file:del_dir_r(Scratch),
    persistent_term:erase(cactor_test_env),
    ok.

scratch_dir() ->
    Base = case os:getenv("TMPDIR") of
               false -> "/tmp";
               "" -> "/tmp";
               T -> T
           end,
    Dir = filename:join(Base, "cactor-ct-" ++ os:getpid() ++ "-"
                        ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

%% undefined if an epmd answers already; else {Owner, OsPid} of ours.
ensure_epmd(Port, Scratch) ->
    case epmd_answers() of
        true -> undefined;
        false -> start_epmd(Port, Scratch)
    end.

epmd_answers() ->
    case erl_epmd:names({127, 0, 0, 1}) of
        {ok, _} -> true;
        _ -> false
    end.

start_epmd(Port, Scratch) ->
    Exe = case os:find_executable("epmd") of
              false -> filename:join([code:root_dir(), "bin", "epmd"]);
              E -> E
          end,
    Self = self(),
    Owner = spawn(fun() ->
                          P = cactor_test_lib:open_wrapped(Exe, ["-port", integer_to_list(Port),
                                                                 "-address", "127.0.0.1"],
                                                           [{cd, Scratch}]),
                          OsPid = cactor_test_lib:wrapped_os_pid(P, 5000),
                          Self ! {epmd_pid, self(), OsPid},
                          receive stop -> catch port_close(P) end
                  end),
    OsPid = receive {epmd_pid, Owner, OP} -> OP after 6000 -> error(epmd_no_pid) end,
    ok = cactor_test_lib:wait_until(fun epmd_answers/0, 5000),
    {Owner, OsPid}.
