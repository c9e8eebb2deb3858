%% @doc The `cactor' application: its top supervisor, `cactor_sup', holds
%% one `cactor_node_sup' per C node started with `cactor:start_node/2'.
-module(cactor_app).
-behaviour(application).

-export([start/2, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    cactor_sup:start_link().

-spec stop(term()) -> ok.
stop(_State) ->
    ok.
