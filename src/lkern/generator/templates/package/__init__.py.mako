"""${Title} (${code}): ${summary}"""
