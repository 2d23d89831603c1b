"""Drives the conformance plugin's logging, progress, sampling and elicitation tools
with the official Python MCP SDK, answering the host's requests from callbacks.

Usage: client_features.py URL
Prints one JSON object with what the client saw: a 2025-11-25 session ("legacy") that
sets its log level, collects log messages and progress, answers sampling and
elicitation (accepting, then declining); and 2026-07-28 connections ("modern"), where
the host may not send requests: sampling and elicitation arrive as input-required
results the SDK answers from the same callbacks and retries; log messages come only
at the level each request names.
"""

import asyncio
import json
import sys

from mcp import Client, types


def texts(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if c.type == "text"]


async def legacy(url: str) -> dict:
    logs: list[dict] = []
    progress: list[list] = []
    sampled: list[dict] = []
    elicited: list[dict] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append({"level": params.level, "logger": params.logger, "data": params.data})

    async def on_sample(context, params: types.CreateMessageRequestParams):
        sampled.append(
            {
                "messages": [m.content.text for m in params.messages],
                "max_tokens": params.max_tokens,
            }
        )
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="Paris, of course."),
            model="python-test-model",
            stop_reason="endTurn",
        )

    async def on_elicit(context, params: types.ElicitRequestParams):
        elicited.append({"message": params.message, "schema": params.requested_schema})
        if "decline" in params.message:
            return types.ElicitResult(action="decline")
        if "coffee" in params.message:
            return types.ElicitResult(action="accept", content={"size": "large", "oat_milk": True})
        return types.ElicitResult(
            action="accept", content={"username": "ada", "email": "ada@example.com"}
        )

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append([done, total, message])

    async with Client(
        url,
        mode="legacy",
        logging_callback=on_log,
        sampling_callback=on_sample,
        elicitation_callback=on_elicit,
    ) as client:
        # Before any level is set, the session sends info and above; `warning` stops them
        # all; `debug` lets the debug message through too.
        await client.call_tool("test_tool_with_logging", {})
        logs_by_default = logs[:]
        await client.set_logging_level("warning")
        quiet = await client.call_tool("test_tool_with_logging", {})
        logs_when_warning = len(logs) - len(logs_by_default)
        await client.set_logging_level("debug")
        del logs[:]
        logged = await client.call_tool("test_tool_with_logging", {})
        reported = await client.call_tool(
            "test_tool_with_progress", {}, progress_callback=on_progress
        )
        sample = await client.call_tool("test_sampling", {"prompt": "Capital of France?"})
        accepted = await client.call_tool(
            "test_elicitation", {"message": "Who are you?"}
        )
        declined = await client.call_tool(
            "test_elicitation", {"message": "Please decline this one"}
        )
        coffee = await client.call_tool("order_coffee", {})
        return {
            "protocol_version": client.protocol_version,
            "quiet_is_error": bool(quiet.is_error),
            "logs_by_default": logs_by_default,
            "logs_when_warning": logs_when_warning,
            "logs": logs,
            "logged": texts(logged),
            "progress": progress,
            "reported": texts(reported),
            "sampled": sampled,
            "sample": texts(sample),
            "sample_is_error": bool(sample.is_error),
            "elicited": elicited,
            "accepted": texts(accepted),
            "declined": texts(declined),
            "coffee": texts(coffee),
        }


async def modern(url: str) -> dict:
    asked: list[str] = []
    logs: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async def on_sample(context, params):
        asked.append("sampling: " + params.messages[0].content.text)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="Rome."),
            model="python-test-model",
        )

    async def on_elicit(context, params: types.ElicitRequestParams):
        asked.append("elicitation: " + params.message)
        return types.ElicitResult(
            action="accept", content={"size": "small", "sugar": 2, "oat_milk": False}
        )

    async with Client(
        url, mode="auto", sampling_callback=on_sample, elicitation_callback=on_elicit
    ) as client:
        sample = await client.call_tool("test_sampling", {"prompt": "Capital of Italy?"})
        coffee = await client.call_tool("order_coffee", {})
        protocol_version = client.protocol_version
        # No log level asked for: no log messages.
        await client.call_tool("test_tool_with_logging", {})
        logs_unasked = len(logs)
    async with Client(url, mode="auto", log_level="notice", logging_callback=on_log) as leveled:
        # `notice` named on each request: the tool's debug and info messages stay home...
        await leveled.call_tool("test_tool_with_logging", {})
        logs_at_notice = len(logs)
    async with Client(url, mode="auto", log_level="info", logging_callback=on_log) as info:
        # ...and at `info` its info messages arrive, on the request's own stream.
        await info.call_tool("test_tool_with_logging", {})
        return {
            "protocol_version": protocol_version,
            "asked": asked,
            "is_error": bool(sample.is_error),
            "text": texts(sample),
            "coffee": texts(coffee),
            "logs_unasked": logs_unasked,
            "logs_at_notice": logs_at_notice,
            "logs": logs,
        }


async def main(url: str) -> None:
    print(json.dumps({"legacy": await legacy(url), "modern": await modern(url)}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
