"""Customer records: one row per customer, loaded into `customer_records` and upserted into the
customer dimension (its profile: name, email, country, signup date).

Columns: customer id, name, email, country (ISO 3166-1 alpha-2), signup date. The natural key
is customer_id: a later file's record of a customer replaces an earlier one. No enrichment:
nothing is looked up, the rows load as they are. docs/datasets/customers.md describes it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from etl_assets.datasets.base import (
    Check,
    CheckContext,
    ColumnRule,
    Dataset,
    Kind,
    lineage_columns,
)
from etl_assets.datasets.dimensions import CUSTOMER_PROFILES
from etl_assets.db import metadata

customer_records = sa.Table(
    "customer_records",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("signup_date", sa.Date, nullable=False),
    *lineage_columns(),  # job_id, source_row
    sa.Index("ix_customer_records_job_id", "job_id"),
    sa.Index("ix_customer_records_email", "email"),
)

# ISO 3166-1 alpha-2: every officially assigned code.
COUNTRY_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRIES = frozenset(COUNTRY_CODES.split())

# One @, something before it, a dot in the domain, no spaces: what a mail server can route.
EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s.]{2,}"


def _emails_shared(context: CheckContext) -> sa.Select[Any]:
    c = customer_records.c
    return (
        sa.select(c.email, sa.func.count().label("customers"))
        .group_by(c.email)
        .having(sa.func.count() > 1)
    )


CUSTOMERS = Dataset(
    name="customers",
    description="Customer records: id, name, email, country and signup date.",
    columns=(
        ColumnRule("customer_id", Kind.TEXT),
        ColumnRule("name", Kind.TEXT, max_length=200),
        ColumnRule(
            "email", Kind.TEXT, max_length=254, pattern=EMAIL, pattern_hint="an email address"
        ),
        ColumnRule(
            "country",
            Kind.CODE,
            max_length=2,
            choices=COUNTRIES,
            choices_hint="an ISO 3166 country code (e.g. DE, FR, US)",
        ),
        ColumnRule("signup_date", Kind.DATE),
    ),
    natural_key=("customer_id",),
    fact_table=customer_records,
    dimensions=(CUSTOMER_PROFILES,),
    event_keys={"customers": "customer_id"},
    checks=(
        Check(
            name="emails_unique",
            description="No two customers share an email address (a duplicate account).",
            what="email addresses held by more than one customer",
            offending=_emails_shared,
            blocking=False,
        ),
    ),
)
