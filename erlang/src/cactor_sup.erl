%% @doc Top supervisor of the `cactor' application. Its children are one
%% `cactor_node_sup' per C node, with the node name as child id: those of
%% the application's environment `nodes' (`[{Name, Opts}]', as
%% cactor:start_node/2 takes them), started with it in that order, and
%% those started later on demand. They are temporary: a node whose own
%% restart intensity is exceeded is given up (its supervisor exits)
%% without touching the others.
-module(cactor_sup).
-behaviour(supervisor).

-export([start_link/0, start_node/2, stop_node/1, node_sup/1, which_nodes/0, node_spec/3]).
-export([init/1]).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec start_node(node(), map()) -> {ok, pid()} | {error, term()}.
start_node(Node, Opts) ->
    case supervisor:start_child(?MODULE, node_spec(Node, Opts, temporary)) of
        {ok, Pid} -> {ok, Pid};
        {ok, Pid, _} -> {ok, Pid};
        {error, {already_started, _}} -> {error, {already_started, Node}};
        {error, already_present} -> {error, {already_started, Node}};
        {error, _} = E -> E
    end.

-spec stop_node(node()) -> ok | {error, not_found}.
stop_node(Node) ->
    case supervisor:terminate_child(?MODULE, Node) of
        ok ->
            %% temporary children are deleted on termination; be sure
            _ = supervisor:delete_child(?MODULE, Node),
            ok;
        {error, not_found} ->
            {error, not_found}
    end.

-spec node_sup(node()) -> {ok, pid()} | {error, not_found}.
node_sup(Node) ->
    case [P || {Id, P, _, _} <- supervisor:which_children(?MODULE), Id =:= Node, is_pid(P)] of
        [P] -> {ok, P};
        [] -> {error, not_found}
    end.

-spec which_nodes() -> [node()].
which_nodes() ->
    [Id || {Id, P, _, _} <- supervisor:which_children(?MODULE), is_pid(P)].

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Nodes = application:get_env(cactor, nodes, []),
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, configured(Nodes)}}.

%% The child spec of a node's supervisor: temporary here; in a tree of the
%% user's own (cactor:child_spec/2), the node's restart type.
-spec node_spec(node(), map(), supervisor:restart()) -> supervisor:child_spec().
node_spec(Node, Opts, Restart) ->
    #{id => Node,
      start => {cactor_node_sup, start_link, [Node, Opts]},
      restart => Restart,
      shutdown => infinity,
      type => supervisor,
      modules => [cactor_node_sup]}.

%% The nodes of the environment, checked as start_node/2 checks its
%% arguments: a bad entry stops the application's start, saying which.
configured(Nodes) when is_list(Nodes) ->
    Specs = [configured_node(E) || E <- Nodes],
    Ids = [maps:get(id, S) || S <- Specs],
    case Ids -- lists:usort(Ids) of
        [] -> Specs;
        [Dup | _] -> exit({bad_nodes_config, {duplicate, Dup}})
    end;
configured(Nodes) ->
    exit({bad_nodes_config, {not_a_list, Nodes}}).

configured_node({Name, Opts} = E) when is_list(Opts); is_map(Opts) ->
    case cactor:full_name(Name) of
        {ok, Node} -> node_spec(Node, cactor:opts_map(Opts), temporary);
        {error, Why} -> exit({bad_nodes_config, {E, Why}})
    end;
configured_node(E) ->
    exit({bad_nodes_config, E}).
