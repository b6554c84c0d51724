"""The bench's anchor: the smallest aiogram bot, which replies a fixed text to every text.

bench/bench_telegram.py runs it as a process against the same fake Bot API, with the same load,
in the same run as our bot, and reports our figures as a ratio to it: absolute timings on a
shared machine say little, "N times a bare aiogram bot" stays comparable between runs.

Same environment as `python -m bot run`: TELEGRAM_BOT_TOKEN, TELEGRAM_API_BASE, HTTP_HOST,
HTTP_PORT, and WEBHOOK_URL / WEBHOOK_SECRET for webhook mode (long polling otherwise). No
database, no filters (a synchronous filter would cost a thread hop, see handlers/filters.py),
no middlewares: what aiogram itself costs per update.
"""

from __future__ import annotations

import asyncio
import os
import signal
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

REPLY = "Hvala, primili smo vaše pitanje."


async def reply(message: Message) -> None:
    if message.text:
        await message.answer(REPLY)


async def main() -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_BASE"]))
    bot = Bot(os.environ["TELEGRAM_BOT_TOKEN"], session=session)
    dispatcher = Dispatcher()
    dispatcher.message.register(reply)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    app = web.Application()
    app.router.add_get("/healthz", lambda _request: _ok())
    webhook_url = os.environ.get("WEBHOOK_URL")
    if webhook_url:
        handler = SimpleRequestHandler(
            dispatcher, bot, secret_token=os.environ.get("WEBHOOK_SECRET")
        )
        app.router.add_post(urlsplit(webhook_url).path, handler.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(
        runner, os.environ.get("HTTP_HOST", "127.0.0.1"), int(os.environ.get("HTTP_PORT", "8080"))
    )
    await site.start()
    try:
        if webhook_url:
            await bot.set_webhook(webhook_url, secret_token=os.environ.get("WEBHOOK_SECRET"))
            await stop.wait()
        else:
            polling = asyncio.create_task(
                dispatcher.start_polling(bot, handle_signals=False, polling_timeout=10)
            )
            await stop.wait()
            await dispatcher.stop_polling()
            await polling
    finally:
        await runner.cleanup()
        await bot.session.close()


async def _ok() -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    asyncio.run(main())
