// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// A USDT-like token for devnets: 6 decimals, and like mainnet USDT its
/// `transfer`, `transferFrom` and `approve` return nothing, and a blacklisted address cannot
/// send (`addBlackList`, as on mainnet); `blockRecipient` marks an address that cannot receive
/// (as USDC's blacklist does). Anyone may mint and blacklist.
contract MockUSDT {
    string public constant name = "Tether USD (mock)";
    string public constant symbol = "USDT";
    uint8 public constant decimals = 6;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    mapping(address => bool) public isBlackListed;
    mapping(address => bool) public isBlockedRecipient;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function mint(address to, uint256 value) external {
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function addBlackList(address who) external {
        isBlackListed[who] = true;
    }

    function blockRecipient(address who) external {
        isBlockedRecipient[who] = true;
    }

    function removeBlackList(address who) external {
        isBlackListed[who] = false;
    }

    function approve(address spender, uint256 value) external {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
    }

    function transfer(address to, uint256 value) external {
        _move(msg.sender, to, value);
    }

    function transferFrom(address from, address to, uint256 value) external {
        uint256 allowed = allowance[from][msg.sender];
        require(allowed >= value, "allowance");
        allowance[from][msg.sender] = allowed - value;
        _move(from, to, value);
    }

    /// Several transfers in one transaction (tests: two deposits paid by one tx; bulk traffic).
    function multiTransfer(address[] calldata to, uint256[] calldata values) external {
        require(to.length == values.length, "length mismatch");
        for (uint256 i; i < to.length; ++i) {
            _move(msg.sender, to[i], values[i]);
        }
    }

    /// A Transfer log without the ERC20 shape (the value indexed as a fourth topic, no data,
    /// as ERC721 writes it), the kind of log some tokens emit: the watcher must skip it.
    function emitOddTransfer(address to, uint256 value) external {
        bytes32 sig = keccak256("Transfer(address,address,uint256)");
        address from = msg.sender;
        assembly {
            log4(0, 0, sig, from, to, value)
        }
    }

    function _move(address from, address to, uint256 value) internal {
        require(!isBlackListed[from], "blacklisted");
        require(!isBlockedRecipient[to], "blocked recipient");
        require(balanceOf[from] >= value, "balance");
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
