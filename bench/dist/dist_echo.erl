%% dist_echo: the Erlang contender of bench/dist. Started on its own node
%% with `-s dist_echo start`, it registers two gen_servers:
%%
%%   echo  {Pid, T} -> Pid ! {echo, T}; {cast, T} counted;
%%         {report, Pid} -> Pid ! {count, N} (and resets);
%%         gen_server:call(echo, Req) -> Req
%%   hash  gen_server:call(hash, Bin) -> crypto:hash(md5, Bin), each call
%%         hashed in a process of its own, so that both schedulers work
%%         (the way one keeps CPU-heavy work in Erlang).
%%
%% and the functions dist_echo:id(T) -> T and dist_echo:md5(Bin) -> its
%% MD5, for erpc:call.
-module(dist_echo).
-behaviour(gen_server).

-export([start/0, id/1, md5/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

start() ->
    {ok, _} = gen_server:start({local, echo}, ?MODULE, echo, []),
    {ok, _} = gen_server:start({local, hash}, ?MODULE, hash, []),
    io:format("dist_echo ~s ready (os pid ~s)~n", [node(), os:getpid()]).

id(T) -> T.

md5(Bin) -> crypto:hash(md5, Bin).

init(echo) -> {ok, 0};
init(hash) -> {ok, hash}.

handle_call(Bin, From, hash) when is_binary(Bin) ->
    _ = spawn(fun() -> gen_server:reply(From, crypto:hash(md5, Bin)) end),
    {noreply, hash};
handle_call(Req, _From, State) ->
    {reply, Req, State}.

handle_cast(_Msg, State) ->
    {noreply, State}.

handle_info({cast, _}, N) when is_integer(N) ->
    {noreply, N + 1};
handle_info({report, Pid}, N) when is_integer(N) ->
    Pid ! {count, N},
    {noreply, 0};
handle_info({Pid, T}, State) when is_pid(Pid) ->
    Pid ! {echo, T},
    {noreply, State};
handle_info(_Other, State) ->
    {noreply, State}.
