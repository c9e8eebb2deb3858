%% @doc Top supervisor of the `cactor' application. Its children are
%% started on demand, one `cactor_node_sup' per C node, with the node name
%% as child id. They are temporary: a node whose own restart intensity is
%% exceeded is given up (its supervisor exits) without touching the others.
-module(cactor_sup).
-behaviour(supervisor).

-export([start_link/0, start_node/2, stop_node/1, node_sup/1, which_nodes/0]).
-export([init/1]).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec start_node(node(), map()) -> {ok, pid()} | {error, term()}.
start_node(Node, Opts) ->
    Spec = #{id => Node,
             start => {cactor_node_sup, start_link, [Node, Opts]},
             restart => temporary,
             shutdown => infinity,
             type => supervisor,
             modules => [cactor_node_sup]},
    case supervisor:start_child(?MODULE, Spec) of
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
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, []}}.
