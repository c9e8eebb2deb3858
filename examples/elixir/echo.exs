# Calling C actors from Elixir: start a C node (cactor-node) under the
# cactor application's supervisor, then talk to its actors as to any
# GenServer on another node. See README.md next to this file for how to
# run it.
if node() == :nonode@nohost do
  IO.puts("start me on a distributed node: elixir --sname NAME (see README.md)")
  System.halt(2)
end

{:ok, _} = Application.ensure_all_started(:cactor)

plugin = Path.join([:code.priv_dir(:cactor), "plugins", "example_plugin.so"])
plugins = if File.regular?(plugin), do: [plugin], else: []

# Name without "@": the C node gets this node's host, e.g. :"ex_cnode@127.0.0.1".
{:ok, cnode} = :cactor.start_node(:ex_cnode, %{threads: 2, plugins: plugins})
IO.puts("started C node #{cnode}; Node.ping -> #{Node.ping(cnode)}")

# The built-in echo actor answers GenServer.call with the request itself...
IO.puts("GenServer.call({:echo, cnode}, ...) -> " <>
          inspect(GenServer.call({:echo, cnode}, %{from: "Elixir", list: [1, 2, 3]})))

# ... and a plain {pid, term} message with {:echo, term}.
send({:echo, cnode}, {self(), {:hello, "wörld"}})

receive do
  {:echo, term} -> IO.puts("echo message came back: #{inspect(term)}")
after
  5_000 -> raise "no echo"
end

if plugins != [] do
  # The example plugin's kv actor: a gen_server-style store written in C.
  :ok = GenServer.call({:kv, cnode}, {:put, :lang, "Elixir"})
  IO.puts("kv get -> #{inspect(GenServer.call({:kv, cnode}, {:get, :lang}))}")
  # C functions, through :rpc and :erpc.
  IO.puts(":rpc.call(cnode, :example, :add, [2, 40]) -> #{:rpc.call(cnode, :example, :add, [2, 40])}")
  IO.puts(":erpc.call(cnode, :example, :reverse, [\"elixir\"]) -> " <>
            inspect(:erpc.call(cnode, :example, :reverse, ["elixir"])))
  # A C function whose answer the kv actor gives (a deferred answer).
  IO.puts(":erpc.call(cnode, :example, :get, [:lang]) -> " <>
            inspect(:erpc.call(cnode, :example, :get, [:lang])))
end

# Monitoring a C actor works as for any process.
pid = :rpc.call(cnode, :erlang, :whereis, [:echo])
ref = Process.monitor(pid)
Process.exit(pid, :kill)

# (in a function: OTP 25.2's compiler chokes on this receive at top level)
wait_down = fn ref, pid ->
  receive do
    {:DOWN, ^ref, :process, ^pid, reason} -> reason
  after
    5_000 -> raise "no DOWN"
  end
end

IO.puts("echo #{inspect(pid)} went down: #{inspect(wait_down.(ref, pid))}")

# Its C supervisor restarts it under the same name.
Process.sleep(200)
IO.puts("after the restart: #{inspect(GenServer.call({:echo, cnode}, :still_there))}, " <>
          "new pid #{inspect(:rpc.call(cnode, :erlang, :whereis, [:echo]))}")

:ok = :cactor.stop_node(cnode)
IO.puts("stopped #{cnode}")
