%% @doc Supervisor of one C node: a single `cactor_node' worker (the owner
%% of the cactor-node OS process), restarted when the OS process dies,
%% within the node's own restart intensity (options `intensity' and
%% `period', default 3 restarts in 10 s). Past it, this supervisor exits
%% and `cactor_sup' forgets the node. The worker's restart type is the
%% option `restart' (default permanent); a transient or temporary worker
%% that is not restarted is significant: this supervisor then exits too
%% (auto_shutdown), so that a node stopped for good is forgotten as well.
-module(cactor_node_sup).
-behaviour(supervisor).

-export([start_link/2, worker/1]).
-export([init/1]).

-spec start_link(node(), map()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Node, Opts) ->
    supervisor:start_link(?MODULE, {Node, Opts}).

%% The node's cactor_node worker, if it is running right now.
-spec worker(pid()) -> {ok, pid()} | {error, restarting | not_found}.
worker(Sup) ->
    try supervisor:which_children(Sup) of
        [{cactor_node, P, worker, _}] when is_pid(P) -> {ok, P};
        [{cactor_node, _, worker, _}] -> {error, restarting};
        _ -> {error, not_found}
    catch exit:_ -> {error, not_found}
    end.

-spec init({node(), map()}) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({Node, Opts}) ->
    Restart = maps:get(restart, Opts, permanent),
    Flags = #{strategy => one_for_one,
              intensity => maps:get(intensity, Opts, 3),
              period => maps:get(period, Opts, 10),
              auto_shutdown => case Restart of
                                   permanent -> never;
                                   _ -> any_significant
                               end},
    Child = #{id => cactor_node,
              start => {cactor_node, start_link, [Node, Opts]},
              restart => Restart,
              significant => Restart =/= permanent,
              %% terminate/2 waits stop_timeout for SIGTERM, then kills
              shutdown => maps:get(stop_timeout, Opts, 5000) + 5000,
              type => worker,
              modules => [cactor_node]},
    {ok, {Flags, [Child]}}.
