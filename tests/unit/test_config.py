"""Tests of safeship.config: defaults, interpolation, error reporting, overrides, loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeship.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ErrorRateCheck,
    LatencyCheck,
    LatencyJudgeCheck,
    LocalRouterSettings,
    SequentialErrorRateCheck,
    json_schema,
    load_config,
    parse_config,
    parse_steps,
    redacted,
)
from safeship.errors import ConfigError

SOURCE = "safeship.yaml"


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(text, SOURCE, env or {})


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return info.value.problems


def only_problem(text: str, env: dict[str, str] | None = None) -> str:
    problems = problems_of(text, env)
    assert len(problems) == 1, problems
    return problems[0]


# --- defaults ----------------------------------------------------------------


def test_minimal_config_fills_every_default() -> None:
    config = parse("service: checkout\n")

    assert config.service == "checkout"
    assert config.version == 1
    assert config.canary.steps == (10, 50, 100)
    assert config.canary.hold == 300.0
    assert config.canary.min_hold == 60.0
    assert config.canary.warmup == 10.0
    assert config.canary.interval == 10.0
    assert config.canary.min_requests == 100
    assert config.canary.limits.consecutive_errors == 5
    assert config.canary.limits.failure_limit == 0
    assert config.store.url == "sqlite:///.safeship/history.db"
    assert list(config.environments) == ["production"]
    assert isinstance(config.router, LocalRouterSettings)


def test_default_checks_are_statistical_error_rate_and_latency() -> None:
    checks = parse("service: checkout\n").canary.checks

    assert [type(c) for c in checks] == [SequentialErrorRateCheck, LatencyJudgeCheck]
    assert [c.name for c in checks] == ["error_rate", "latency"]
    # The 1% false-rollback budget, split: most to errors, which decide most rollbacks.
    assert (checks[0].alpha, checks[1].alpha) == (0.009, 0.001)
    assert checks[1].confidence == 0.98


def test_threshold_checks_remain_available() -> None:
    text = "service: s\ncanary:\n  checks:\n    - type: error_rate\n    - type: latency\n"
    assert [type(c) for c in parse(text).canary.checks] == [ErrorRateCheck, LatencyCheck]


def test_min_hold_defaults_to_60_seconds_for_a_long_hold() -> None:
    config = parse("service: a\ncanary:\n  hold: 600\n")

    assert config.canary.min_hold == 60.0


@pytest.mark.parametrize("hold", ["20", "'20'", '"20"'])
def test_min_hold_is_clamped_to_a_short_hold_when_not_given(hold: str) -> None:
    config = parse(f"service: a\ncanary:\n  hold: {hold}\n  warmup: 1\n")

    assert config.canary.hold == 20.0
    assert config.canary.min_hold == 20.0


def test_explicit_min_hold_longer_than_hold_is_an_error() -> None:
    problem = only_problem("service: a\ncanary:\n  hold: 30\n  min_hold: 45\n  warmup: 1\n")

    assert "canary" in problem
    assert "min_hold (45.0) cannot exceed hold (30.0)" in problem


def test_warmup_not_shorter_than_hold_is_an_error() -> None:
    problem = only_problem("service: a\ncanary:\n  hold: 10\n")

    assert "warmup (10.0) must be shorter than hold (10.0)" in problem


def test_duplicate_check_names_are_an_error() -> None:
    text = "service: a\ncanary:\n  checks:\n    - type: error_rate\n    - type: error_rate\n"

    assert "check names must be unique" in only_problem(text)


def test_models_are_frozen() -> None:
    config = parse("service: a\n")

    with pytest.raises(ValueError, match="frozen"):
        config.service = "b"  # type: ignore[misc]


# --- environment interpolation -------------------------------------------------


def test_var_is_replaced_from_the_environment() -> None:
    config = parse("service: ${SERVICE}\n", {"SERVICE": "checkout"})

    assert config.service == "checkout"


def test_var_inside_a_longer_string_is_replaced() -> None:
    config = parse(
        "service: a\nstore:\n  url: postgresql://app@${DB_HOST}:5432/deploys\n",
        {"DB_HOST": "db.internal"},
    )

    assert config.store.url == "postgresql://app@db.internal:5432/deploys"


def test_var_default_is_used_when_unset() -> None:
    config = parse("service: ${SERVICE:-fallback}\n")

    assert config.service == "fallback"


def test_var_default_is_ignored_when_set() -> None:
    config = parse("service: ${SERVICE:-fallback}\n", {"SERVICE": "real"})

    assert config.service == "real"


def test_double_dollar_is_a_literal_dollar() -> None:
    config = parse(
        "service: a\nhooks:\n  pre_rollout:\n    - command: [echo, cost$$5]\n",
        {"5": "no"},
    )

    assert config.hooks.pre_rollout[0].command == ("echo", "cost$5")


def test_double_dollar_before_braces_is_not_interpolated() -> None:
    config = parse(
        "service: a\nhooks:\n  pre_rollout:\n    - command:\n        - echo\n        - $${HOME}\n",
        {"HOME": "/root"},
    )

    assert config.hooks.pre_rollout[0].command == ("echo", "${HOME}")


def test_interpolated_number_becomes_a_number() -> None:
    config = parse("service: a\ncanary:\n  hold: ${HOLD}\n  warmup: 1\n", {"HOLD": "30"})

    assert config.canary.hold == 30.0
    assert config.canary.min_hold == 30.0  # clamped like a literal 30


def test_interpolated_int_field_gets_an_int() -> None:
    config = parse("service: a\nmetrics:\n  port: ${PORT}\n", {"PORT": "9100"})

    assert config.metrics.port == 9100


def test_quoted_interpolation_stays_a_string() -> None:
    config = parse(
        "service: a\nhooks:\n  pre_rollout:\n    - command: [deploy]\n      env:\n"
        '        PORT: "${PORT}"\n',
        {"PORT": "8080"},
    )

    assert config.hooks.pre_rollout[0].env == {"PORT": "8080"}


@pytest.mark.parametrize("secret", ["@leading-at", "*star", "&amp", "has #hash", "a: b", "[open"])
def test_interpolated_value_is_kept_verbatim_not_parsed_as_yaml(secret: str) -> None:
    config = parse("service: a\nstore:\n  url: ${DB_URL}\n", {"DB_URL": secret})

    assert config.store.url == secret


def test_interpolated_empty_value_is_null() -> None:
    config = parse("service: a\ncanary:\n  pause_timeout: ${PAUSE:-}\n")

    assert config.canary.pause_timeout is None


def test_missing_env_var_reports_file_line_key_and_name() -> None:
    problem = only_problem("service: a\ncanary:\n  hold: ${HOLD}\n")

    assert problem.startswith(f"{SOURCE}:3: canary.hold: ")
    assert "environment variable HOLD is not set" in problem
    assert "${HOLD:-default}" in problem


def test_missing_env_var_gets_no_duplicate_type_error_for_the_same_key() -> None:
    problems = problems_of("service: a\ncanary:\n  hold: ${HOLD}\n")

    assert len(problems) == 1
    assert not any("valid number" in p for p in problems)


def test_missing_env_var_in_discriminator_gets_no_duplicate_choice_error() -> None:
    problems = problems_of("service: a\nrouter:\n  type: ${ROUTER}\n")

    assert problems == [
        f"{SOURCE}:3: router.type: environment variable ROUTER is not set "
        "(set it, or write ${ROUTER:-default})"
    ]


def test_missing_env_var_inside_a_list_reports_the_index_path() -> None:
    text = (
        "service: a\nhooks:\n  pre_rollout:\n    - command:\n        - deploy\n        - ${TAG}\n"
    )

    problem = only_problem(text)

    assert problem.startswith(f"{SOURCE}:6: hooks.pre_rollout[0].command[1]: ")
    assert "TAG" in problem


def test_every_missing_env_var_is_reported() -> None:
    problems = problems_of("service: ${SVC}\nstore:\n  url: ${DB}\n")

    assert len(problems) == 2
    assert any("service" in p and "SVC" in p for p in problems)
    assert any("store.url" in p and "DB" in p for p in problems)


# --- error reporting -----------------------------------------------------------


def test_unknown_key_reports_its_line_and_dotted_path() -> None:
    problem = only_problem("service: a\ncanary:\n  hold: 300\n  holdd: 30\n")

    assert problem.startswith(f"{SOURCE}:4: canary.holdd: unknown key")
    assert "config schema" in problem


def test_unknown_top_level_key_is_reported() -> None:
    problem = only_problem("service: a\ncanery:\n  hold: 30\n")

    assert problem.startswith(f"{SOURCE}:2: canery: unknown key")


def test_wrong_type_names_the_key_path_and_line() -> None:
    problem = only_problem("service: a\ncanary:\n  hold: soon\n")

    assert problem.startswith(f"{SOURCE}:3: canary.hold: ")
    assert "number" in problem


def test_list_index_appears_in_the_path() -> None:
    text = "service: a\ncanary:\n  checks:\n    - type: error_rate\n      max_ratio: 2\n"

    problem = only_problem(text)

    assert problem.startswith(f"{SOURCE}:5: canary.checks[0].max_ratio: ")
    assert "less than or equal to 1" in problem


def test_second_list_item_gets_index_one() -> None:
    text = (
        "service: a\ncanary:\n  checks:\n    - type: error_rate\n"
        "    - type: latency\n      quantile: 2\n"
    )

    assert only_problem(text).startswith(f"{SOURCE}:6: canary.checks[1].quantile: ")


def test_environment_named_like_a_union_tag_keeps_its_name_in_the_path() -> None:
    text = "service: a\nenvironments:\n  local:\n    canary:\n      holdd: 3\n"

    assert only_problem(text).startswith(f"{SOURCE}:5: environments.local.canary.holdd: ")


def test_union_member_labels_are_not_in_the_path() -> None:
    text = "service: a\nhooks:\n  pre_rollout:\n    - command:\n        - deploy\n        - 2\n"

    problems = problems_of(text)

    assert (
        f"{SOURCE}:6: hooks.pre_rollout[0].command[1]: Input should be a valid string" in problems
    )
    assert not any("tuple[" in p or ".str" in p for p in problems)


def test_missing_nested_required_key_is_reported_with_its_path() -> None:
    problem = only_problem("service: a\nsmoke_tests:\n  - name: x\n    http: {}\n")

    assert problem == f"{SOURCE}:4: smoke_tests[0].http.url: required key is missing"


def test_missing_service_is_reported_as_required() -> None:
    problem = only_problem("canary:\n  hold: 300\n")

    assert "service: required key is missing" in problem


def test_invalid_service_name_is_reported() -> None:
    assert "service" in only_problem("service: '-bad name'\n")


def test_duplicate_key_is_reported() -> None:
    problems = problems_of("service: a\ncanary:\n  hold: 300\n  hold: 200\n")

    assert f"{SOURCE}:4: canary.hold: duplicate key" in problems


def test_several_problems_are_reported_at_once() -> None:
    text = (
        "service: a\ncanary:\n  holdd: 3\n  hold: soon\n  steps: [50, 10]\nstore:\n  url: ${DB}\n"
    )

    with pytest.raises(ConfigError) as info:
        parse(text)

    problems = info.value.problems
    assert len(problems) == 4
    assert "4 problem(s)" in str(info.value)
    joined = "\n".join(problems)
    assert f"{SOURCE}:3: canary.holdd: unknown key" in joined
    assert f"{SOURCE}:4: canary.hold:" in joined
    assert f"{SOURCE}:5: canary.steps: " in joined
    assert f"{SOURCE}:7: store.url: environment variable DB" in joined


def test_invalid_yaml_reports_a_line() -> None:
    with pytest.raises(ConfigError, match=r"^safeship\.yaml:4: not valid YAML: mapping values"):
        parse("service: a\ncanary:\n  hold: 30\n    bad: indent\n")


def test_empty_file_says_service_is_required() -> None:
    with pytest.raises(ConfigError, match="the file is empty; at least 'service:' is required"):
        parse("")


def test_comment_only_file_is_empty() -> None:
    with pytest.raises(ConfigError, match="empty"):
        parse("# nothing yet\n")


def test_top_level_list_is_rejected() -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse("- service: a\n")


# --- steps ---------------------------------------------------------------------


def test_custom_steps_are_kept() -> None:
    assert parse("service: a\ncanary:\n  steps: [1, 5, 25, 100]\n").canary.steps == (1, 5, 25, 100)


def test_single_step_of_100_is_allowed() -> None:
    assert parse("service: a\ncanary:\n  steps: [100]\n").canary.steps == (100,)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("[50, 10, 100]", "strictly increase"),
        ("[10, 10, 100]", "strictly increase"),
        ("[10, 50]", "last step must be 100"),
        ("[0, 50, 100]", "from 1 to 100"),
        ("[10, 150]", "from 1 to 100"),
        ("[-5, 100]", "from 1 to 100"),
        ("[]", "at least one step"),
    ],
)
def test_invalid_steps_are_rejected(steps: str, message: str) -> None:
    problem = only_problem(f"service: a\ncanary:\n  steps: {steps}\n")

    assert problem.startswith(f"{SOURCE}:3: canary.steps: ")
    assert message in problem


# --- router / provider choice ---------------------------------------------------


def test_unknown_router_type_names_router_type_and_the_choices() -> None:
    problem = only_problem("service: a\nrouter:\n  type: traefik\n")

    assert problem.startswith(f"{SOURCE}:3: router.type: ")
    assert "'traefik' is not available" in problem
    assert "'local'" in problem


def test_unknown_check_type_names_the_choices() -> None:
    problem = only_problem("service: a\ncanary:\n  checks:\n    - type: saturation\n")

    assert problem.startswith(f"{SOURCE}:4: canary.checks[0].type: ")
    assert "'error_rate'" in problem
    assert "'latency'" in problem


# --- environments ----------------------------------------------------------------

ENVIRONMENTS = """\
service: checkout
canary:
  steps: [10, 50, 100]
  hold: 300
  min_requests: 500
hooks:
  pre_rollout:
    - command: [deploy, canary]
  on_rollback:
    - command: [page, oncall]
environments:
  staging:
    canary:
      steps: [50, 100]
      hold: 30
      warmup: 1
    hooks:
      pre_rollout:
        - command: [deploy, staging]
  production: {}
"""


def test_environment_canary_keys_override_the_top_level_ones() -> None:
    staging = parse(ENVIRONMENTS).for_environment("staging")

    assert staging.service == "checkout"
    assert staging.environment == "staging"
    assert staging.canary.steps == (50, 100)
    assert staging.canary.hold == 30.0
    assert staging.canary.warmup == 1.0
    assert staging.canary.min_hold == 30.0  # the default is clamped to the shorter hold


def test_environment_inherits_canary_keys_it_does_not_set() -> None:
    staging = parse(ENVIRONMENTS).for_environment("staging")

    assert staging.canary.min_requests == 500


def test_environment_hooks_merge_stage_by_stage() -> None:
    hooks = parse(ENVIRONMENTS).for_environment("staging").hooks

    assert [h.command for h in hooks.pre_rollout] == [("deploy", "staging")]
    assert [h.command for h in hooks.on_rollback] == [("page", "oncall")]


def test_environment_override_does_not_change_the_top_level() -> None:
    config = parse(ENVIRONMENTS)

    assert config.canary.steps == (10, 50, 100)
    assert config.canary.hold == 300.0


def test_environment_merged_conflict_is_reported_at_the_environment() -> None:
    text = (
        "service: a\ncanary:\n  hold: 300\n  min_hold: 120\n"
        "environments:\n  dev:\n    canary:\n      hold: 30\n"
    )

    problem = only_problem(text)

    assert problem.startswith(f"{SOURCE}:7: environments.dev.canary: ")
    assert "min_hold (120.0) cannot exceed hold (30.0)" in problem


def test_environment_without_overrides_uses_the_top_level() -> None:
    config = parse(ENVIRONMENTS)

    production = config.for_environment("production")

    assert production.canary == config.canary
    assert production.router == config.router
    assert production.store == config.store


def test_environment_smoke_tests_override_even_when_empty() -> None:
    text = (
        "service: a\nsmoke_tests:\n  - name: health\n    http:\n      url: http://x/health\n"
        "environments:\n  dev:\n    smoke_tests: []\n  prod: {}\n"
    )
    config = parse(text)

    assert config.for_environment("dev").smoke_tests == ()
    assert [s.name for s in config.for_environment("prod").smoke_tests] == ["health"]


def test_unknown_environment_lists_the_known_ones() -> None:
    config = parse(ENVIRONMENTS)

    with pytest.raises(ConfigError, match="'qa' is not in the config") as info:
        config.for_environment("qa")

    assert "production, staging" in str(info.value)


def test_invalid_environment_override_reports_its_path() -> None:
    text = "service: a\nenvironments:\n  staging:\n    canary:\n      steps: [10, 50]\n"

    problem = only_problem(text)

    assert problem.startswith(f"{SOURCE}:5: environments.staging.canary.steps: ")


# --- command-line overrides ---------------------------------------------------------


def test_with_overrides_replaces_steps_and_hold() -> None:
    env = parse("service: a\n").for_environment("production")

    changed = env.with_overrides(steps=(25, 100), hold=20.0)

    assert changed.canary.steps == (25, 100)
    assert changed.canary.hold == 20.0
    assert changed.canary.min_hold == 20.0  # clamped so the short hold is valid
    assert env.canary.steps == (10, 50, 100)  # the original is untouched


def test_with_overrides_keeps_min_hold_when_it_fits() -> None:
    env = parse("service: a\n").for_environment("production")

    assert env.with_overrides(hold=120.0).canary.min_hold == 60.0


def test_with_no_overrides_returns_the_same_settings() -> None:
    env = parse("service: a\n").for_environment("production")

    assert env.with_overrides() == env


def test_invalid_steps_override_is_a_config_error_naming_canary_steps() -> None:
    env = parse("service: a\n").for_environment("production")

    with pytest.raises(ConfigError, match=r"invalid override: canary\.steps: .*last step must be"):
        env.with_overrides(steps=(10, 50))


def test_invalid_hold_override_is_a_config_error() -> None:
    env = parse("service: a\n").for_environment("production")

    with pytest.raises(ConfigError, match=r"canary\.hold"):
        env.with_overrides(hold=-1.0)


def test_parse_steps_reads_comma_separated_percentages() -> None:
    assert parse_steps("10,50,100") == (10, 50, 100)
    assert parse_steps(" 5, 25 ,100 ") == (5, 25, 100)


@pytest.mark.parametrize("text", ["10,half,100", "10.5,100", "ten"])
def test_parse_steps_rejects_non_integers(text: str) -> None:
    with pytest.raises(ConfigError, match="comma-separated whole percentages"):
        parse_steps(text)


# --- hooks and smoke tests -----------------------------------------------------------


def test_hook_argv_list_is_accepted() -> None:
    config = parse("service: a\nhooks:\n  pre_rollout:\n    - command: [kubectl, apply]\n")

    hook = config.hooks.pre_rollout[0]
    assert hook.command == ("kubectl", "apply")
    assert hook.shell is False


def test_hook_string_command_without_shell_is_an_error() -> None:
    problem = only_problem("service: a\nhooks:\n  pre_rollout:\n    - command: make deploy\n")

    assert problem.startswith(f"{SOURCE}:4: hooks.pre_rollout[0]: ")
    assert "set shell: true" in problem


def test_hook_string_command_with_shell_is_accepted() -> None:
    text = "service: a\nhooks:\n  on_rollback:\n    - command: make undo\n      shell: true\n"

    assert parse(text).hooks.on_rollback[0].command == "make undo"


def test_hook_empty_argv_is_an_error() -> None:
    assert "command is empty" in only_problem(
        "service: a\nhooks:\n  pre_rollout:\n    - command: []\n"
    )


def test_smoke_test_with_http_is_accepted() -> None:
    text = "service: a\nsmoke_tests:\n  - name: health\n    http:\n      url: http://c/health\n"

    smoke = parse(text).smoke_tests[0]
    assert smoke.http is not None
    assert smoke.http.url == "http://c/health"
    assert smoke.http.expect_status == 200


def test_smoke_test_with_neither_http_nor_command_is_an_error() -> None:
    problem = only_problem("service: a\nsmoke_tests:\n  - name: nothing\n")

    assert problem.startswith(f"{SOURCE}:3: smoke_tests[0]: ")
    assert "exactly one of http or command" in problem


def test_smoke_test_with_both_http_and_command_is_an_error() -> None:
    text = (
        "service: a\nsmoke_tests:\n  - name: both\n    http:\n      url: http://c/\n"
        "    command: [/bin/true]\n"
    )

    assert "exactly one of http or command" in only_problem(text)


# --- schema and redaction ---------------------------------------------------------------


def test_json_schema_describes_the_top_level_keys() -> None:
    schema = json_schema()

    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert {"service", "canary", "router"} <= set(schema["properties"])
    assert "service" in schema["required"]
    assert schema["additionalProperties"] is False
    json.dumps(schema)  # serialisable for editors


def test_redacted_masks_a_password_inside_a_url() -> None:
    config = parse("service: a\nstore:\n  url: postgresql://u:secret@h/db\n")

    data = redacted(config)

    assert data["store"]["url"] == "postgresql://u:***@h/db"
    assert "secret" not in json.dumps(data)


def test_redacted_masks_an_interpolated_url_password() -> None:
    config = parse("service: a\nstore:\n  url: postgresql://u:${PW}@h/db\n", {"PW": "hunter2"})

    assert config.store.url == "postgresql://u:hunter2@h/db"
    assert "hunter2" not in json.dumps(redacted(config))


@pytest.mark.parametrize("key", ["API_TOKEN", "DB_PASSWORD", "client_secret", "apikey"])
def test_redacted_masks_values_under_secret_looking_keys(key: str) -> None:
    config = parse(
        f"service: a\nhooks:\n  pre_rollout:\n    - command: [deploy]\n      env:\n"
        f"        {key}: s3cr3t-value\n        REGION: eu-west-1\n"
    )

    env = redacted(config)["hooks"]["pre_rollout"][0]["env"]

    assert env[key] == "***"
    assert env["REGION"] == "eu-west-1"
    assert "s3cr3t-value" not in json.dumps(redacted(config))


def test_redacted_leaves_ordinary_values_alone() -> None:
    data = redacted(parse("service: checkout\n"))

    assert data["service"] == "checkout"
    assert data["store"]["url"] == "sqlite:///.safeship/history.db"
    assert data["canary"]["steps"] == [10, 50, 100]


def test_redacted_works_on_an_environment_config() -> None:
    config = parse("service: a\nstore:\n  url: postgresql://u:secret@h/db\n")

    data = redacted(config.for_environment("production"))

    assert data["environment"] == "production"
    assert "secret" not in json.dumps(data)


# --- load_config -------------------------------------------------------------------------


def write(path: Path, service: str) -> Path:
    path.write_text(f"service: {service}\n", encoding="utf-8")
    return path


def test_load_config_reads_an_explicit_path(tmp_path: Path) -> None:
    path = write(tmp_path / "custom.yaml", "explicit")

    assert load_config(path, env={}).service == "explicit"


def test_explicit_path_wins_over_env_and_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / DEFAULT_CONFIG_PATH, "from-cwd")
    from_env = write(tmp_path / "env.yaml", "from-env")
    explicit = write(tmp_path / "explicit.yaml", "explicit")

    config = load_config(str(explicit), env={"SAFESHIP_CONFIG": str(from_env)})

    assert config.service == "explicit"


def test_safeship_config_env_wins_over_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / DEFAULT_CONFIG_PATH, "from-cwd")
    from_env = write(tmp_path / "env.yaml", "from-env")

    assert load_config(env={"SAFESHIP_CONFIG": str(from_env)}).service == "from-env"


def test_falls_back_to_safeship_yaml_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / DEFAULT_CONFIG_PATH, "from-cwd")

    assert load_config(env={}).service == "from-cwd"


def test_load_config_interpolates_from_the_given_env(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("service: ${NAME}\n", encoding="utf-8")

    assert load_config(path, env={"NAME": "from-mapping"}).service == "from-mapping"


def test_problems_name_the_file_that_was_read(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("service: a\ncanary:\n  holdd: 1\n", encoding="utf-8")

    with pytest.raises(ConfigError) as info:
        load_config(path, env={})

    assert info.value.problems == [
        f"{path}:3: canary.holdd: unknown key "
        "(check the spelling; `safeship config schema` lists the keys)"
    ]


def test_missing_file_message_mentions_config_option(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError) as info:
        load_config(missing, env={})

    message = str(info.value)
    assert str(missing) in message
    assert "not found" in message
    assert "--config" in message
    assert "SAFESHIP_CONFIG" in message


def test_missing_default_file_in_cwd_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError, match=r"safeship\.yaml: config file not found"):
        load_config(env={})


def test_directory_instead_of_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_config(tmp_path, env={})


@pytest.mark.parametrize("key", ["interval", "poll_interval"])
def test_looks_more_often_than_ten_times_a_second_are_refused(key: str) -> None:
    # A tick below the float spacing of a long uptime would never advance the clock.
    where = "canary" if key == "interval" else "provider"
    kind = "  type: scrape\n" if where == "provider" else ""
    text = f"service: s\n{where}:\n{kind}  {key}: 1e-13\n"
    assert any(f"{where}.{key}" in p for p in problems_of(text))


# --- values that cannot work are refused when the config loads ----------------------


@pytest.mark.parametrize("hold", ["inf", ".inf", "!!float 1e400", ".nan", "-.inf"])
def test_a_hold_that_is_not_a_finite_number_is_refused(hold: str) -> None:
    problem = only_problem(f"service: a\ncanary:\n  hold: {hold}\n")
    assert problem.startswith("safeship.yaml:3: canary.hold:")


def test_a_hold_beyond_a_week_is_refused_unless_meant() -> None:
    problem = only_problem("service: a\ncanary:\n  hold: 1000000\n")
    assert "hold 1e+06 s is longer than a week" in problem
    assert "allow_long_holds: true" in problem
    meant = parse("service: a\ncanary:\n  hold: 1000000\n  allow_long_holds: true\n")
    assert meant.canary.hold == 1_000_000
    with pytest.raises(ConfigError, match="longer than a week"):
        parse("service: a\n").for_environment("production").with_overrides(hold=1e9)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("router:\n  type: local\n  admin_url: not a url\n", "router.admin_url"),
        ("router:\n  type: local\n  admin_url: ''\n", "router.admin_url"),
        ("provider:\n  type: scrape\n  canary_url: ftp://x/metrics\n", "provider.canary_url"),
        ("smoke_tests:\n  - name: up\n    http: {url: 'localhost:8080/health'}\n", "url"),
    ],
)
def test_every_url_setting_is_a_url_when_the_config_loads(text: str, key: str) -> None:
    # `admin_url: not a url` used to pass `config validate` and fail at run time (exit 3)
    problem = only_problem("service: a\n" + text)
    assert key in problem
    assert "http(s) URL" in problem


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "provider:\n  type: prometheus\n  requests_metric: http_réquests_total\n",
            "requests_metric",
        ),
        ("provider:\n  type: prometheus\n  error_label: stätus\n", "error_label"),
        ("provider:\n  type: prometheus\n  labels: {sérvice: a}\n", "labels"),
        ("provider:\n  type: scrape\n  error_label: stätus\n", "error_label"),
    ],
)
def test_metric_and_label_names_follow_prometheus_ascii_grammar(text: str, key: str) -> None:
    assert key in only_problem("service: a\n" + text)


def test_a_url_that_cannot_be_parsed_is_a_config_error_that_does_not_show_it() -> None:
    # httpx raised InvalidURL at run time, and the message quoted part of the password.
    problem = only_problem(
        "service: a\nrouter: {type: local, admin_url: 'http://admin:${PW}@127.0.0.1:1'}\n",
        env={"PW": "Xq?ss#word1"},
    )
    assert "router.admin_url" in problem
    assert "percent-encoded" in problem
    assert "Xq" not in problem


def test_ordinary_urls_and_addresses_still_load() -> None:
    config = parse(
        "service: a\n"
        "router: {type: local, admin_url: 'HTTP://[::1]:8081/'}\n"
        "metrics: {address: LOCALHOST}\n"
        "provider: {type: scrape, canary_url: 'http://{{ canary_address }}/metrics'}\n"
    )
    assert config.metrics.address == "LOCALHOST"
