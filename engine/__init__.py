"""autotrader's trading core: plain, typed asyncio Python. Never imports Prefect."""

IST_NAME = "Asia/Kolkata"
