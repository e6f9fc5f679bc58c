"""Extra NetBox settings for docker-compose.yml's netboxcommunity/netbox container.

Mounted as /etc/netbox/config/argora.py: netbox-docker loads every .py file in that folder after its
own configuration.py, and settings found here win. Its environment variables do not cover these.
"""

from os import environ

# Without a pepper NetBox cannot make v2 tokens ('nbt_<key>.<secret>'), the kind hack/seed_demo.py
# provisions for the controllers. At least 50 characters.
API_TOKEN_PEPPERS = {1: environ["API_TOKEN_PEPPER_1"]}
# The controllers read 1,000 objects per page (ARGORA_NETBOX_PAGE_SIZE).
MAX_PAGE_SIZE = 1000
# A local demo: no census reporting, release checks or plugin catalog calls.
ISOLATED_DEPLOYMENT = True
CENSUS_REPORTING_ENABLED = False
