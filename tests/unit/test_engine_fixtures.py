"""The public fixtures whose routing depends on `set`, pipelines, workbooks and loop aggregates."""

from __future__ import annotations

from tests.unit.engine_harness import Run, load_fixture


def test_args_passing_arc_set_reaches_the_pipeline_as_numbers() -> None:
    run = Run(load_fixture("test_args_passing.yaml"))
    run.succeed(run.command("start"), {"init": {"status": "initialized"}})
    command = run.command("use_vars")
    assert command.tool_kind == "task_sequence"
    render_context = command.context["render_context"]
    # The task's `input` is rendered by the worker: `{{ ctx.test_var }}` must resolve there.
    assert command.context["tool_config"][0]["input"] == {
        "test_var": "{{ ctx.test_var }}",
        "computed": "{{ ctx.computed }}",
    }
    assert render_context["ctx"]["test_var"] == 100 and render_context["ctx"]["computed"] == 200
    run.succeed(command, {"compute": {"status": "success", "result": 300}})
    end = run.command("end")
    assert "test_var" not in end.context["render_context"]["ctx"]  # arc `set` is not persisted
    run.succeed(end, {"complete": {"status": "complete"}})
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_end_with_action_feeds_end_through_its_arc_set() -> None:
    run = Run(load_fixture("test_end_with_action.yaml"))
    run.succeed(run.command("start"), {"init": {"status": "initialized"}})
    process = {
        "process": {
            "status": "success",
            "data": {"records_processed": 100, "temp_table": "temp_session_12345"},
        }
    }
    run.succeed(run.command("process_data"), process)
    end = run.command("end")
    ctx = end.context["render_context"]["ctx"]
    assert ctx["temp_table"] == "temp_session_12345"
    assert ctx["cleanup_required"] is True
    assert end.context["render_context"]["process_data"]["data"]["temp_table"] == "temp_session_12345"
    run.succeed(end)
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_vars_simple_policy_context_updates_reach_the_next_step() -> None:
    run = Run(load_fixture("vars_test/test_vars_simple.yaml"))
    run.succeed(run.command("start"), {"start_task": {"status": "initialized"}})
    set_var = run.command("set_var")
    policy = set_var.context["tool_config"][0]["spec"]["policy"]
    assert policy["rules"][0]["else"]["then"]["set"]["ctx.test_counter"] == "{{ output.data.test_counter }}"
    data = {
        "set_vars": {"status": "success", "test_counter": 42, "message": "Variable set successfully"},
        "_context_updates": {"ctx.test_counter": 42, "ctx.set_message": "Variable set successfully"},
    }
    run.succeed(set_var, data)
    ctx = run.command("get_var").context["render_context"]["ctx"]
    assert ctx["test_counter"] == 42 and ctx["set_message"] == "Variable set successfully"


def test_pipeline_simple_result_is_flattened_for_the_next_step() -> None:
    run = Run(load_fixture("pagination/pipeline/test_pipeline_simple.yaml"), {"api_url": "http://mock"})
    run.succeed(run.command("start"))
    pipeline = run.command("run_pipeline")
    fetch = pipeline.context["tool_config"][0]
    assert fetch["url"] == "http://mock/api/v1/assessments"
    assert fetch["set"] == {"fetch_result": "{{ output }}"}
    assert fetch["spec"]["policy"]["rules"][0]["when"] == "{{ output.error.retryable }}"
    result = {
        "fetch": {"status_code": 200, "data": {"data": []}, "body": {"data": []}},
        "transform": {"count": 5, "ids": [1, 2, 3, 4, 5], "has_more": True},
        "validate": {"status": "passed", "items_processed": 5},
    }
    run.succeed(pipeline, result)
    report = run.command("report_result").context["input"]["pipeline_result"]
    assert report["status"] == "passed"
    assert report["validate"] == {"status": "passed", "items_processed": 5}
    assert report["count"] == 5


def test_user_profile_scorer_chain_with_workbook_steps() -> None:
    run = Run(load_fixture("playbook_composition/user_profile_scorer.yaml"))
    run.succeed(run.command("start"))
    extract = run.command("extract_user_data")
    assert extract.context["input"]["input_data"]["name"] == "TestUser"
    user = {"user_name": "TestUser", "age": 30.0, "department": "Engineering", "years_experience": 5.0}
    run.succeed(extract, user)
    experience = run.command("score_experience")
    assert experience.context["tool_config"]["kind"] == "python"
    assert experience.context["input"]["years_experience"] == 5.0
    run.run_all({})
    assert [c.step for c in run.commands][-1] == "finalize_result"
    terminal = run.terminal
    assert terminal is not None and terminal.context["final_step"] == "finalize_result"


def test_playbook_composition_sequential_loop_over_a_pipeline() -> None:
    run = Run(load_fixture("playbook_composition/playbook_composition.yaml"))
    run.succeed(run.command("start"))
    run.succeed(run.command("setup_storage"), {"affected_rows": 0})
    names = []
    for index in range(4):
        (command,) = run.open_commands()
        assert command.step == "process_users" and command.iter_index == index
        tasks = command.context["tool_config"]
        assert tasks[0]["kind"] == "playbook" and tasks[0]["input"]["user_data"] == "{{ user }}"
        assert "{{ save_profile.profile_score" in tasks[1]["command"]
        assert tasks[1]["auth"] == "pg_local"
        user = command.context["render_context"]["user"]
        names.append(user["name"])
        score = {"user_name": user["name"], "profile_score": 16.0, "score_category": "Junior"}
        run.succeed(command, score)
    assert names == ["Alice", "Bob", "Charlie", "Diana"]
    validate = run.command("validate_results")
    results = validate.context["input"]["user_results"]
    assert [r["user_name"] for r in results] == names
    run.run_all({})
    terminal = run.terminal
    assert terminal is not None and terminal.event_type == "playbook.completed"


def test_duckdb_pipeline_input_is_left_for_the_worker() -> None:
    run = Run(load_fixture("duckdb_test.yaml"))
    rows = [{"name": "Alice", "age": 30}, {"name": "Charlie", "age": 35}]
    run.succeed(
        run.command("start"), {"run_query": {"columns": ["name", "age"], "rows": rows, "row_count": 2}}
    )
    process = run.command("process")
    assert process.context["tool_config"][0]["input"] == {"query_results": "{{ start }}"}
    # C6: a step whose only result is a query result set is handed on as its rows.
    assert process.context["render_context"]["start"] == rows
