"""namespace"""
