# ExUnit test of the cactor application from Elixir, against a real
# cactor-node started with :cactor.start_node/2.
#
# Run by `make test` (scripts/test.sh, runner "elixir") as
#
#   elixir --name ex_NAME@127.0.0.1 --cookie C -pa _build/default/lib/cactor/ebin \
#          test/elixir/cactor_test.exs
#
# with a private HOME and epmd (ERL_EPMD_PORT). It needs a distributed node.
ExUnit.start(timeout: 60_000, seed: 0)

defmodule CactorTest.Doubler do
  # An Elixir GenServer that a C actor calls.
  use GenServer
  def init(:ok), do: {:ok, 0}
  def handle_call({:double, n}, {from, _tag}, calls), do: {:reply, {:doubled, 2 * n, node(from)}, calls + 1}
  def handle_call(:calls, _from, calls), do: {:reply, calls, calls}
end

defmodule CactorTest do
  use ExUnit.Case, async: false

  @t 10_000

  setup_all do
    if node() == :nonode@nohost, do: raise("start elixir with --name or --sname")
    {:ok, _} = Application.ensure_all_started(:cactor)
    plugin = Path.join([:code.priv_dir(:cactor), "plugins", "example_plugin.so"])
    assert File.regular?(plugin), "the example plugin is missing: #{plugin}"
    {:ok, node} = :cactor.start_node(:ex_cnode, %{threads: 2, plugins: [plugin]})
    on_exit(fn -> :cactor.stop_node(node) end)
    %{cnode: node}
  end

  defp echo(n, term) do
    tag = make_ref()
    send({:echo, n}, {self(), {tag, term}})
    receive do
      {:echo, {^tag, got}} -> got
    after
      @t -> flunk("no echo of #{inspect(term)}")
    end
  end

  defp whereis_c(n, name), do: :rpc.call(n, :erlang, :whereis, [name], @t)

  defp wait_new(n, name, old, tries \\ 100) do
    case whereis_c(n, name) do
      pid when is_pid(pid) and pid != old -> pid
      _ when tries > 0 -> Process.sleep(50); wait_new(n, name, old, tries - 1)
      other -> flunk("#{name} not restarted: #{inspect(other)}")
    end
  end

  test "a C node in an Elixir supervision tree", %{cnode: n} do
    {:ok, sup} = Supervisor.start_link([{:cactor, name: :ex_own, threads: 1}], strategy: :one_for_one)
    own = :"ex_own@127.0.0.1"
    assert [{^own, _, :supervisor, _}] = Supervisor.which_children(sup)
    assert GenServer.call({:echo, own}, :mine) == :mine
    assert :cactor.which_nodes() == [n]
    :ok = Supervisor.stop(sup)
    assert Node.ping(own) == :pang
  end

  test "the C node is a node", %{cnode: n} do
    assert n == :"ex_cnode@127.0.0.1"
    assert Node.ping(n) == :pong
    assert n in Node.list(:hidden)
    assert n in :cactor.which_nodes()
  end

  test "GenServer.call to the C echo actor", %{cnode: n} do
    assert GenServer.call({:echo, n}, :hello) == :hello
    assert GenServer.call({:echo, n}, {:tuple, "binary", ~c"charlist", [k: 1]}, @t) ==
             {:tuple, "binary", ~c"charlist", [k: 1]}
    pid = whereis_c(n, :echo)
    assert node(pid) == n
    assert GenServer.call(pid, %{by: :pid}) == %{by: :pid}
    assert :cactor.call(n, :echo, :via_helper) == :via_helper
  end

  test "Elixir terms go through a C actor unchanged", %{cnode: n} do
    terms = [
      "UTF-8 text: héllo 日本語",
      ~c"charlist",
      :"Elixir.Some.Module",
      :ünïcödé,
      [a: 1, b: [c: 2]],
      %{"k" => [1, 2.5, nil, true], {:t} => %{}},
      MapSet.new([1, 2, 3]),
      ~D[2024-02-29],
      ~U[2024-01-01 12:00:00Z],
      1..10,
      Regex.source(~r/a+b/),
      <<1::3>>,
      binary_part(:crypto.strong_rand_bytes(100), 10, 50),
      2 ** 200,
      -(2 ** 64),
      3.14159,
      self(),
      make_ref(),
      fn x -> x + 1 end,
      &Enum.map/2,
      [1, 2 | 3],
      {}
    ]

    for t <- terms do
      assert echo(n, t) === t
    end

    f = echo(n, fn x -> x * 3 end)
    assert f.(3) == 9
  end

  test "GenServer.cast and call to the plugin's kv actor", %{cnode: n} do
    assert GenServer.call({:kv, n}, {:put, "elixir", %{from: :elixir}}) == :ok
    assert GenServer.call({:kv, n}, {:get, "elixir"}) == {:ok, %{from: :elixir}}
    assert GenServer.cast({:kv, n}, {:put, :cast, [1, 2]}) == :ok
    assert GenServer.call({:kv, n}, {:get, :cast}) == {:ok, [1, 2]}
    assert GenServer.call({:kv, n}, {:get, :nothing}) == :not_found
    # :sys through kv's format_state; suspended, a cast waits for the resume
    assert {"elixir", %{from: :elixir}} in :sys.get_state({:kv, n})
    assert :sys.suspend({:kv, n}) == :ok
    GenServer.cast({:kv, n}, {:put, :cast, :later})
    assert {:cast, [1, 2]} in :sys.get_state({:kv, n})
    assert :sys.resume({:kv, n}) == :ok
    assert GenServer.call({:kv, n}, {:get, :cast}) == {:ok, :later}
  end

  test "a C actor runs an Elixir function through rpc", %{cnode: n} do
    send({:caller, n}, {:rpc, node(), String, :upcase, ["from c"], self()})
    assert_receive {:called, "FROM C"}, @t
  end

  test "a C actor calls an Elixir GenServer", %{cnode: n} do
    {:ok, server} = GenServer.start(CactorTest.Doubler, :ok)
    send({:caller, n}, {:call, server, {:double, 21}, self()})
    assert_receive {:called, {:doubled, 42, ^n}}, @t
    assert GenServer.call(server, :calls) == 1
    GenServer.stop(server)
  end

  test "rpc and erpc into C functions", %{cnode: n} do
    assert :rpc.call(n, :erlang, :node, []) == n
    assert is_pid(:rpc.call(n, :erlang, :whereis, [:echo]))
    assert %{node: ^n} = :rpc.call(n, :cactor, :info, [])
    assert :rpc.call(n, :example, :add, [2, 40]) == 42
    assert :erpc.call(n, :example, :reverse, ["abc"]) == "cba"
    assert {:badrpc, {:EXIT, {:undef, _}}} = :rpc.call(n, :example, :nope, [])
    assert_raise ErlangError, fn -> :erpc.call(n, :example, :nope, []) end
    # a function whose answer the kv actor gives (a deferred answer)
    :ok = GenServer.call({:kv, n}, {:put, :elixir, %{lang: "elixir"}})
    assert :erpc.call(n, :example, :get, [:elixir]) == {:ok, %{lang: "elixir"}}
    assert :rpc.call(n, :example, :get, [:nothing]) == :not_found
  end

  test "links, monitors and the C supervisor", %{cnode: n} do
    old = whereis_c(n, :echo)
    ref = Process.monitor({:echo, n})
    Process.flag(:trap_exit, true)
    Process.link(old)
    assert echo(n, :sync) == :sync
    Process.exit(old, :kill)
    assert_receive {:DOWN, ^ref, :process, {:echo, ^n}, :killed}, @t
    assert_receive {:EXIT, ^old, :killed}, @t
    Process.flag(:trap_exit, false)
    new = wait_new(n, :echo, old)
    assert new != old
    assert GenServer.call({:echo, n}, :back) == :back
  end

  test "Elixir's Supervisor functions on C supervisors", %{cnode: n} do
    kids = Supervisor.which_children({:cactor_sup, n})
    assert {:echo, whereis_c(n, :echo), :worker, [:echo]} in kids
    assert %{specs: specs, supervisors: 1} = Supervisor.count_children({:cactor_sup, n})
    assert specs == length(kids)
    pool = {:kv_pool, n}
    {:ok, kv} = Supervisor.start_child(pool, [])
    assert GenServer.call(kv, {:put, :k, "v"}) == :ok
    assert GenServer.call(kv, {:get, :k}) == {:ok, "v"}
    assert {:ok, %{id: :kv, start: {:kv, :start_link, []}, restart: :temporary}} =
             :supervisor.get_childspec(pool, kv)
    assert Supervisor.which_children(pool) == [{:undefined, kv, :worker, [:kv]}]
    assert Supervisor.terminate_child(pool, kv) == :ok
    assert Supervisor.which_children(pool) == []
  end

  test "kill -9 of the C node: nodedown, then the Erlang supervisor restarts it", %{cnode: n} do
    {:ok, os_pid} = :cactor.os_pid(n)
    Node.monitor(n, true)
    ref = Process.monitor({:kv, n})
    {_, 0} = System.cmd("kill", ["-9", Integer.to_string(os_pid)])
    assert_receive {:nodedown, ^n}, @t
    assert_receive {:DOWN, ^ref, :process, _, :noconnection}, @t
    new_os = wait_os_pid(n, os_pid, 200)
    assert new_os != os_pid
    assert Node.ping(n) == :pong
    assert GenServer.call({:echo, n}, :again, @t) == :again
    assert :rpc.call(n, :example, :add, [1, 1]) == 2
  end

  defp wait_os_pid(n, old, tries) do
    case :cactor.os_pid(n) do
      {:ok, p} when p != old -> p
      _ when tries > 0 -> Process.sleep(100); wait_os_pid(n, old, tries - 1)
      other -> flunk("not restarted: #{inspect(other)}")
    end
  end
end
