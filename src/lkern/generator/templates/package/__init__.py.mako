"""${Title} (${code}): ${description}"""
