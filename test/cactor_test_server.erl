%% A plain Erlang gen_server for the C actors to call (the example
%% plugin's `caller'): {double, N} -> 2 * N; silence -> no reply.
-module(cactor_test_server).
-behaviour(gen_server).

-export([start/0]).
-export([init/1, handle_call/3, handle_cast/2]).

-spec start() -> {ok, pid()}.
start() ->
    gen_server:start(?MODULE, [], []).

-spec init([]) -> {ok, #{calls := non_neg_integer()}}.
init([]) ->
    {ok, #{calls => 0}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()} | {noreply, map()}.
handle_call({double, N}, {Pid, _}, #{calls := C} = S) ->
    {reply, {doubled, 2 * N, node(Pid)}, S#{calls := C + 1}};
handle_call(silence, _From, S) ->
    {noreply, S};
handle_call(calls, _From, #{calls := C} = S) ->
    {reply, C, S}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.
