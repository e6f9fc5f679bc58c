"""argora-ipaddress: Records in NetBox the IPAddresses Cluster API hands out of Argora's pools."""
