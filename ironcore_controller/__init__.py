"""argora-ironcore: Turns ClusterImports into metal-operator BMCs and BMCSecrets, one pair per NetBox device."""
