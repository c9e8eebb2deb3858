%% @doc The API of the `cactor' application: start C nodes (cactor-node OS
%% processes hosting C actors) under this node's supervision, stop them,
%% and talk to their actors.
%%
%% A C node is an ordinary (hidden) node: once start_node/2 returns, send
%% to `{Name, Node}', `gen_server:call({Name, Node}, Req)',
%% `erlang:monitor_node(Node, true)', `rpc:call(Node, M, F, A)' all work
%% as with an Erlang node. The helpers here add little: defaults and
%% clearer errors.
%%
%% ```
%% {ok, Node} = cactor:start_node(demo, #{threads => 2}),
%% hello = gen_server:call({echo, Node}, hello),
%% ok = cactor:stop_node(Node).
%% '''
%%
%% Or in the application's environment (sys.config; Elixir's config as
%% `config :cactor, nodes: [...]'), started with the application, in
%% order; one that cannot start stops the application's start:
%%
%% ```
%% {cactor, [{nodes, [{my_cnode, #{threads => 2, plugins => ["/path/plugin.so"]}}]}]}
%% '''
-module(cactor).

-export([start_node/1, start_node/2, stop_node/1, which_nodes/0, os_pid/1, node_info/1,
         child_spec/1, child_spec/2, call/3, call/4, cast/3, send/3, ping/1, executable/0]).
%% for cactor_sup, which starts the nodes of the application's environment
-export([full_name/1, opts_map/1]).

-export_type([node_opts/0, node_opt/0]).

-type node_opt() ::
        {cookie, atom() | string()}           % default: erlang:get_cookie()
      | {threads, pos_integer()}              % scheduler threads (default: cores)
      | {plugins, [file:filename()]}          % --load PLUGIN.so, in order
      | {listen, string()}                    % listen address (default 127.0.0.1)
      | {batch_us, 0..1000000}                % --batch-us: wait for dense input (default 100)
      | {spin_us, 0..1000}                    % --spin-us: poll before sleeping (default 20)
      | {extra_args, [string()]}              % more cactor-node arguments
      | {intensity, non_neg_integer()}        % restarts allowed ... (default 3)
      | {period, pos_integer()}               % ... in this many seconds (default 10)
      | {restart, permanent | transient | temporary}   % default permanent
      | {start_timeout, pos_integer()}        % ms until it must answer (default 15000)
      | {stop_timeout, pos_integer()}         % ms between SIGTERM and SIGKILL (default 5000)
      | {await, answer | ready_line}          % answer (default): ping or echo must answer
      | {executable, file:filename()}.        % default: priv/cactor-node of this application
-type node_opts() :: #{atom() => term()} | [node_opt()].

%% @equiv start_node(Name, #{})
-spec start_node(atom() | string()) -> {ok, node()} | {error, term()}.
start_node(Name) ->
    start_node(Name, #{}).

%% @doc Start a C node under the application's supervisor and wait until it
%% answers. `Name' is `alive' (this node's host is added) or
%% `alive@host'. This node must be alive (distributed). The node is
%% restarted, within its restart intensity, when its OS process dies, as
%% its `restart' type says: a transient node that stops cleanly (exit
%% status 0, e.g. `rpc:call(Node, init, stop, [])') or a temporary one is
%% forgotten instead.
-spec start_node(atom() | string(), node_opts()) -> {ok, node()} | {error, term()}.
start_node(Name, Opts) when is_list(Opts) ->
    start_node(Name, opts_map(Opts));
start_node(Name, Opts) when is_map(Opts) ->
    case full_name(Name) of
        {ok, Node} ->
            case application:ensure_all_started(cactor) of
                {ok, _} ->
                    case cactor_sup:start_node(Node, Opts) of
                        {ok, _} -> {ok, Node};
                        {error, Why} -> {error, start_error(Why)}
                    end;
                {error, _} = E ->
                    E
            end;
        {error, _} = E ->
            E
    end.

%% @doc A child spec for a C node under a supervisor of your own instead of
%% the application's: `{name, Name}' with the options of start_node/2, as
%% a map or a list (Elixir: `{:cactor, name: :my_cnode, threads: 2}' in a
%% children list). See child_spec/2.
-spec child_spec(#{name := atom() | string(), atom() => term()} | [node_opt() | {name, term()}]) ->
          supervisor:child_spec().
child_spec(Opts) when is_list(Opts) ->
    child_spec(opts_map(Opts));
child_spec(#{name := Name} = Opts) ->
    child_spec(Name, maps:remove(name, Opts));
child_spec(Opts) ->
    error({badarg, Opts}).

%% @doc A child spec for the C node `Name' under a supervisor of your own:
%% a supervisor of the node (id: the node's name) that starts and restarts
%% its OS process as start_node/2's do, with the same options; its restart
%% type in your tree is the option `restart' too (default permanent: a node
%% past its own restart intensity is started again by your supervisor,
%% within yours). The node lives and dies with your tree; which_nodes/0,
%% stop_node/1, os_pid/1 and node_info/1 know only the application's own
%% nodes. This node must be alive when the spec is made, since the node's
%% name is made then.
-spec child_spec(atom() | string(), node_opts()) -> supervisor:child_spec().
child_spec(Name, Opts) when is_list(Opts) ->
    child_spec(Name, opts_map(Opts));
child_spec(Name, Opts) when is_map(Opts) ->
    case full_name(Name) of
        {ok, Node} -> cactor_sup:node_spec(Node, Opts, maps:get(restart, Opts, permanent));
        {error, Why} -> error(Why)
    end.

%% @doc Stop a C node started by start_node/2 (SIGTERM, then SIGKILL after
%% its stop_timeout).
-spec stop_node(node()) -> ok | {error, not_found}.
stop_node(Node) when is_atom(Node) ->
    case whereis(cactor_sup) of
        undefined -> {error, not_found};
        _ -> cactor_sup:stop_node(Node)
    end.

%% @doc The C nodes running under this node's supervision.
-spec which_nodes() -> [node()].
which_nodes() ->
    case whereis(cactor_sup) of
        undefined -> [];
        _ -> cactor_sup:which_nodes()
    end.

%% @doc The OS pid of a C node's cactor-node process.
-spec os_pid(node()) -> {ok, integer()} | {error, not_found | restarting}.
os_pid(Node) ->
    case node_info(Node) of
        {ok, #{os_pid := P}} -> {ok, P};
        {error, _} = E -> E
    end.

%% @doc What this node knows of a C node it supervises: OS pid, port,
%% how it answered at start, uptime.
-spec node_info(node()) -> {ok, map()} | {error, not_found | restarting}.
node_info(Node) ->
    case whereis(cactor_sup) =/= undefined andalso cactor_sup:node_sup(Node) of
        {ok, Sup} ->
            case cactor_node_sup:worker(Sup) of
                {ok, W} ->
                    try {ok, cactor_node:info(W)}
                    catch exit:_ -> {error, restarting}
                    end;
                {error, _} = E -> E
            end;
        _ ->
            {error, not_found}
    end.

%% @equiv call(Node, Name, Request, 5000)
-spec call(node(), atom(), term()) -> term().
call(Node, Name, Request) ->
    call(Node, Name, Request, 5000).

%% @doc gen_server:call to the actor registered as `Name' on `Node'.
-spec call(node(), atom(), term(), timeout()) -> term().
call(Node, Name, Request, Timeout) ->
    gen_server:call({Name, Node}, Request, Timeout).

%% @doc gen_server:cast ({'$gen_cast', Msg}) to `{Name, Node}'.
-spec cast(node(), atom(), term()) -> ok.
cast(Node, Name, Msg) ->
    gen_server:cast({Name, Node}, Msg).

%% @doc Send a plain message to `{Name, Node}'.
-spec send(node(), atom(), term()) -> term().
send(Node, Name, Msg) ->
    erlang:send({Name, Node}, Msg).

%% @doc net_adm:ping/1.
-spec ping(node()) -> pong | pang.
ping(Node) ->
    net_adm:ping(Node).

%% @doc The cactor-node executable this application starts.
-spec executable() -> {ok, file:filename()} | {error, term()}.
executable() ->
    cactor_node:executable(#{}).

%% ---- internal ----

%% The reason the node's worker gave, without the supervisors' wrapping.
start_error({{shutdown, {failed_to_start_child, cactor_node, R}}, _ChildSpec}) -> R;
start_error({shutdown, {failed_to_start_child, cactor_node, R}}) -> R;
start_error(R) -> R.

%% @private Options as a map, from a map or a list of them.
-spec opts_map(node_opts()) -> map().
opts_map(Opts) when is_map(Opts) ->
    Opts;
opts_map(Opts) when is_list(Opts) ->
    maps:from_list(proplists:unfold(Opts)).

%% @private The node name of `Name' (`alive' or `alive@host'), or why not.
-spec full_name(term()) -> {ok, node()} | {error, not_alive | {badarg, term()}}.
full_name(Name) when is_atom(Name) ->
    full_name(atom_to_list(Name));
full_name(Name) when is_binary(Name) ->
    full_name(binary_to_list(Name));
full_name(Name) when is_list(Name) ->
    case {node(), string:split(Name, "@")} of
        {nonode@nohost, _} ->
            {error, not_alive};
        {_, [""]} ->
            {error, {badarg, Name}};
        {Self, [Alive]} ->
            [_, Host] = string:split(atom_to_list(Self), "@"),
            {ok, list_to_atom(Alive ++ "@" ++ Host)};
        {_, [Alive, Host]} when Alive =/= "", Host =/= "" ->
            case string:find(Host, "@") of
                nomatch -> {ok, list_to_atom(Name)};
                _ -> {error, {badarg, Name}}
            end;
        _ ->
            {error, {badarg, Name}}
    end;
full_name(Name) ->
    {error, {badarg, Name}}.
