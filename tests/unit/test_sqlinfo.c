/*
 * test_sqlinfo.c - unit tests for sqlinfo.c: the lexical screen says yes to
 * every text that can matter (and no to plain traffic), and the parse tree
 * decides pins, setting changes and prepared-statement commands, whatever
 * the spelling.
 */
#include "sqlinfo.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static struct sql_info *inspect(const char *sql)
{
	struct sql_info *si = NULL;
	int rc = sql_inspect_if_needed(sql, strlen(sql), &si);
	CHECK(rc == 0);
	return si;
}

/* ---- the screen --------------------------------------------------------- */

static void test_screen(void)
{
	static const char *const plain[] = {
		"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
		"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 5",
		"INSERT INTO t VALUES ('set search_path = x')",
		"select 'temp', \"x\" from t offset 3",
		"select $1::int, $$ listen x $$",
		"BEGIN; UPDATE t SET a = 1; COMMIT",
		"-- set x = 1\nselect 1",
		"/* do /* nested */ call */ select 1",
		"select E'\\' set x', 1",
		"",
		NULL,
	};
	for (const char *const *p = plain; *p; p++) {
		bool worth = sql_worth_parsing(*p, strlen(*p));
		CHECK(!worth);
		if (worth)
			fprintf(stderr, "  screened in: %s\n", *p);
	}
	static const char *const worth[] = {
		"SET work_mem = '64MB'",
		"  set search_path to a",
		"select 1; set x.y = 1",
		"/* c */ reset all",
		"CREATE TEMP TABLE t (a int)",
		"create table pg_temp.t (a int)",
		"create table \"pg_temp\".t (a int)",
		"select pg_advisory_lock(1)",
		"select pg_catalog.set_config('a.b', 'c', false)",
		"DO $$ begin end $$",
		"call p()",
		"discard all",
		"deallocate all",
		"listen x",
		"declare c cursor with hold for select 1",
		"prepare p as select 1",
		"execute p",
		"load 'x'",
		"select * into temporary t from s",
		NULL,
	};
	for (const char *const *p = worth; *p; p++) {
		bool w = sql_worth_parsing(*p, strlen(*p));
		CHECK(w);
		if (!w)
			fprintf(stderr, "  screened out: %s\n", *p);
	}
}

/* ---- pins --------------------------------------------------------------- */

struct pin_case {
	const char *sql;
	int pin;
};

static void test_pins(void)
{
	static const struct pin_case cases[] = {
		{ "CREATE TEMP TABLE t (a int)", SQL_PIN_TEMP },
		{ "create temporary view v as select 1", SQL_PIN_TEMP },
		{ "CREATE TABLE pg_temp.x (a int)", SQL_PIN_TEMP },
		{ "create table \"pg_temp\".x (a int)", SQL_PIN_TEMP },
		{ "create function pg_temp.f() returns int language sql as 'select 1'", SQL_PIN_TEMP },
		{ "select * into temp t from generate_series(1,3)", SQL_PIN_TEMP },
		{ "create temp table t on commit drop as select 1", SQL_PIN_NONE },
		{ "create temp table t (a int) on commit drop", SQL_PIN_NONE },
		{ "listen chan", SQL_PIN_LISTEN },
		{ "select pg_advisory_lock(1)", SQL_PIN_ADVISORY },
		{ "select pg_catalog.pg_try_advisory_lock_shared(1, 2)", SQL_PIN_ADVISORY },
		{ "select pg_advisory_xact_lock(1)", SQL_PIN_NONE },
		{ "select 'pg_advisory_lock(1)'", SQL_PIN_NONE },
		{ "select 1 where exists (select pg_advisory_lock(k) from t)", SQL_PIN_ADVISORY },
		{ "declare c cursor with hold for select 1", SQL_PIN_HOLD_CURSOR },
		{ "declare c cursor for select 1", SQL_PIN_NONE },
		{ "prepare p(int) as select $1", SQL_PIN_PREPARE },
		{ "deallocate prepare p", SQL_PIN_NONE },
		{ "load 'auto_explain'", SQL_PIN_LOAD },
		{ "set session characteristics as transaction read only", SQL_PIN_SETTING },
		{ "select set_config('a.b', $1, false)", SQL_PIN_SETTING },
		{ "select set_config('a.b', 'x', true)", SQL_PIN_NONE },
		{ "select 'temp'", SQL_PIN_NONE },
		{ "selec temp", SQL_PIN_NONE }, /* does not parse: PostgreSQL refuses it too */
		{ "SELECT PG_TRY_ADVISORY_LOCK_SHARED(1)", SQL_PIN_ADVISORY },
		{ "CREATE TEMPORARY TABLE t (a int)", SQL_PIN_TEMP },
		{ "deallocate prepare q; prepare r as select 1", SQL_PIN_PREPARE },
		{ "select listening from t", SQL_PIN_NONE },
		{ "set work_mem = '8MB'", SQL_PIN_NONE },
		{ "update accounts set balance = balance - 1", SQL_PIN_NONE },
		{ NULL, 0 },
	};
	for (const struct pin_case *c = cases; c->sql; c++) {
		struct sql_info *si = inspect(c->sql);
		int got = si ? si->pin : SQL_PIN_NONE;
		CHECK(got == c->pin);
		if (got != c->pin)
			fprintf(stderr, "  %s: pin %s, want %s\n", c->sql, sql_pin_name(got), sql_pin_name(c->pin));
		sql_info_put(si);
	}
}

/* ---- setting changes ---------------------------------------------------- */

static void test_changes(void)
{
	struct sql_info *si = inspect("SET search_path TO a, b; select 1; reset work_mem ;SET LOCAL x.y = 1;"
				      " set x.z = 'q';");
	CHECK(si && si->n_stmts == 5 && si->n_changes == 3);
	if (si && si->n_changes == 3) {
		CHECK(si->changes[0].op == SQL_CHANGE_SET && si->changes[0].stmt == 0);
		CHECK_STR(si->changes[0].name, "search_path");
		CHECK_STR(si->changes[0].sql, "SET search_path TO a, b");
		CHECK(si->changes[1].op == SQL_CHANGE_RESET && si->changes[1].stmt == 2);
		CHECK_STR(si->changes[1].name, "work_mem");
		CHECK(si->changes[2].stmt == 4);
		CHECK_STR(si->changes[2].sql, "set x.z = 'q'");
	}
	sql_info_put(si);

	si = inspect("SET Work_Mem = 1024");
	CHECK(si && si->n_changes == 1 && strcmp(si->changes[0].name, "work_mem") == 0);
	sql_info_put(si);

	/* reported parameters follow ParameterStatus, not this */
	si = inspect("SET TimeZone = 'UTC'");
	CHECK(si == NULL);
	sql_info_put(si);
	si = inspect("set time zone 'UTC'; set names 'UTF8'; set application_name = 'x'");
	CHECK(si == NULL);
	sql_info_put(si);

	si = inspect("set search_path to default");
	CHECK(si && si->n_changes == 1 && si->changes[0].op == SQL_CHANGE_RESET);
	sql_info_put(si);

	si = inspect("RESET ALL");
	CHECK(si && si->n_changes == 1 && si->changes[0].op == SQL_CHANGE_RESET_ALL);
	sql_info_put(si);

	si = inspect("DISCARD ALL");
	CHECK(si && si->n_changes == 1 && si->changes[0].op == SQL_CHANGE_DISCARD_ALL &&
	      (si->flags & SQL_F_DEALLOCATE_ALL));
	sql_info_put(si);

	si = inspect("select pg_catalog.set_config('app.user', 'O''Brien\\x', false)");
	CHECK(si && si->n_changes == 1);
	if (si && si->n_changes == 1) {
		CHECK_STR(si->changes[0].name, "app.user");
		CHECK_STR(si->changes[0].sql, "SELECT pg_catalog.set_config('app.user', E'O''Brien\\\\x', false)");
	}
	sql_info_put(si);

	si = inspect("set role alice");
	CHECK(si && si->n_changes == 1 && strcmp(si->changes[0].name, "role") == 0);
	sql_info_put(si);

	si = inspect("begin; set x.a = 1; commit");
	CHECK(si && (si->flags & SQL_F_TX_CONTROL) && si->n_changes == 1);
	sql_info_put(si);

	si = inspect("set transaction isolation level serializable");
	CHECK(si == NULL);
	sql_info_put(si);
}

/* ---- prepared statement commands and dynamic SQL ------------------------- */

static void test_commands(void)
{
	struct sql_info *si = inspect("DEALLOCATE \"My Stmt\"");
	CHECK(si && (si->flags & SQL_F_DEALLOCATE) && si->name && strcmp(si->name, "My Stmt") == 0);
	sql_info_put(si);

	si = inspect("deallocate prepare s1;");
	CHECK(si && (si->flags & SQL_F_DEALLOCATE) && si->name && strcmp(si->name, "s1") == 0);
	sql_info_put(si);

	si = inspect("deallocate s1; deallocate s2");
	CHECK(si == NULL || !(si->flags & SQL_F_DEALLOCATE));
	sql_info_put(si);

	si = inspect("DEALLOCATE ALL");
	CHECK(si && (si->flags & SQL_F_DEALLOCATE_ALL) && !(si->flags & SQL_F_DEALLOCATE));
	sql_info_put(si);

	si = inspect("execute sluice_3(1)");
	CHECK(si && (si->flags & SQL_F_EXECUTE) && si->name && strcmp(si->name, "sluice_3") == 0);
	sql_info_put(si);

	si = inspect("DO $$ BEGIN EXECUTE 'LISTEN x'; END $$");
	CHECK(si && (si->flags & SQL_F_DYNAMIC) && si->pin == SQL_PIN_NONE);
	sql_info_put(si);

	si = inspect("CALL p(1)");
	CHECK(si && (si->flags & SQL_F_DYNAMIC));
	sql_info_put(si);
}

static void test_deep_text(void)
{
	/* Deep nesting is read, or assumed to pin, never a crash. */
	size_t n = 3000;
	char *sql = malloc(n * 2 + 64);
	strcpy(sql, "select pg_advisory_lock(");
	for (size_t i = 0; i < n; i++)
		strcat(sql, "(");
	strcat(sql, "1");
	for (size_t i = 0; i < n; i++)
		strcat(sql, ")");
	strcat(sql, ")");
	struct sql_info *si = inspect(sql);
	CHECK(si == NULL || si->pin != SQL_PIN_NONE);
	sql_info_put(si);
	free(sql);
}

UNIT_MAIN({
	test_screen();
	test_pins();
	test_changes();
	test_commands();
	test_deep_text();
})
