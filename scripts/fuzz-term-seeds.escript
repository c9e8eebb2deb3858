#!/usr/bin/env escript
%% Writes the seeds of fuzz_term (test/fuzz/corpus/term/tNNN): terms of
%% every ETF kind Erlang writes, each in the encodings term_to_binary
%% gives (minor versions 0 and 1: old and new floats, and compressed).
%%
%%   scripts/fuzz-term-seeds.escript test/fuzz/corpus/term
main([Dir]) ->
    Terms = [1.5, -0.0, 1.0e300, 42, -1, 255, 256, 1 bsl 40, -(1 bsl 70), 1 bsl 2100,
             atom, 'ünïcödé', '', list_to_atom(lists:duplicate(255, $a)),
             "string", [1, 2 | 3], [], [a, "b", <<"c">>], <<>>, <<1, 2, 3>>, <<1:3>>,
             <<255, 7:5>>, {}, {a}, list_to_tuple(lists:seq(1, 300)), #{},
             #{a => 1, "k" => [v]}, maps:from_list([{I, I} || I <- lists:seq(1, 40)]),
             self(), make_ref(), list_to_port("#Port<0.7>"), fun erlang:node/0,
             fun(X) -> X end,
             {self(), {'$gen_call', {self(), make_ref()}, {get, key}}},
             {'EXIT', self(), {shutdown, 1.25}}],
    Opts = [[], [{minor_version, 0}], [{minor_version, 1}], [compressed]],
    Bins = [term_to_binary(T, O) || T <- Terms, O <- Opts],
    lists:foldl(fun(B, J) ->
                        F = filename:join(Dir, io_lib:format("t~3..0b", [J])),
                        ok = file:write_file(F, B),
                        J + 1
                end, 0, Bins),
    io:format("~p seeds in ~s~n", [length(Bins), Dir]);
main(_) ->
    io:format("usage: fuzz-term-seeds.escript DIR~n"),
    halt(2).
